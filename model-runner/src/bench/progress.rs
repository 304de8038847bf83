//! A hand-rolled progress bar on stderr: redrawn in place on a terminal, a line every tenth
//! of the way otherwise (logs stay short), silent when disabled.

use std::io::{IsTerminal, Write};
use std::time::Instant;

/// Progress over a known number of steps.
#[derive(Debug)]
pub struct Progress {
    total: usize,
    done: usize,
    start: Instant,
    tty: bool,
    enabled: bool,
    last_decile: usize,
    announced: bool,
}

impl Progress {
    /// A bar over `total` steps; `enabled = false` prints nothing.
    pub fn new(total: usize, enabled: bool) -> Progress {
        Progress {
            total: total.max(1),
            done: 0,
            start: Instant::now(),
            tty: std::io::stderr().is_terminal(),
            enabled,
            last_decile: 0,
            announced: false,
        }
    }

    /// Announces the step about to run.
    pub fn step(&mut self, label: &str) {
        if !self.enabled {
            return;
        }
        let frac = self.done as f64 / self.total as f64;
        let elapsed = self.start.elapsed().as_secs_f64();
        let eta = if self.done > 0 {
            format!("{:>4.0}s", elapsed / frac - elapsed)
        } else {
            "   ?s".to_string()
        };
        if self.tty {
            const W: usize = 30;
            let fill = (frac * W as f64) as usize;
            let bar: String = "#".repeat(fill) + &"-".repeat(W - fill);
            let mut e = std::io::stderr().lock();
            let _ = write!(
                e,
                "\r\x1b[2K[{bar}] {}/{} eta {eta}  {label}",
                self.done, self.total
            );
            let _ = e.flush();
        } else {
            let decile = self.done * 10 / self.total;
            if decile > self.last_decile || (self.done == 0 && !self.announced) {
                self.last_decile = decile;
                self.announced = true;
                eprintln!(
                    "bench: {}/{} ({:.0}%) eta {eta}  {label}",
                    self.done,
                    self.total,
                    frac * 100.0
                );
            }
        }
    }

    /// Marks the current step done.
    pub fn inc(&mut self) {
        self.done = (self.done + 1).min(self.total);
    }

    /// Clears the bar.
    pub fn finish(&mut self) {
        if self.enabled && self.tty {
            eprint!("\r\x1b[2K");
        }
        if self.enabled {
            eprintln!(
                "bench: {} steps in {:.1}s",
                self.done,
                self.start.elapsed().as_secs_f64()
            );
        }
    }
}
