//! Golden vectors through `bitnet-kernels`, on every ISA this CPU has and 1..=3 threads:
//! packing reproduces the producers' bytes, unpacking their values, and the I2_S
//! int8-activation GEMV reproduces bitnet.cpp's `y` bit for bit.

use bitnet_kernels::{Exec, I2s, Isa, TernaryMatrix, Tq1_0, Tq2_0};
use bitnet_lab::vectors::{TqFormat, i2s_cases, tq_cases};

fn execs() -> Vec<Exec> {
    let mut v = Vec::new();
    for isa in Isa::available() {
        for threads in 1..=3 {
            v.push(Exec::new(isa, threads).unwrap());
        }
    }
    v
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn i2s_pack_reproduces_bitnet_cpp_bytes() {
    for c in i2s_cases() {
        let packed = I2s::quantize(&c.weights, c.rows, c.cols).unwrap();
        assert_eq!(packed.bytes(), &c.packed[..], "{}", c.name);
        assert_eq!(packed.scale(), c.weight_scale, "{}", c.name);
    }
}

#[test]
fn i2s_unpack_reproduces_weights() {
    for c in i2s_cases() {
        let m = I2s::new(c.rows, c.cols, &c.packed[..]).unwrap();
        let mut w = vec![0f32; c.rows * c.cols];
        m.dequantize(&mut w).unwrap();
        assert_eq!(bits(&w), bits(&c.weights), "{}", c.name);
        m.check_codes_strict().unwrap();
    }
}

#[test]
fn i2s_gemv_i8_reproduces_bitnet_cpp_bit_for_bit() {
    for c in i2s_cases() {
        let m = I2s::new(c.rows, c.cols, &c.packed[..]).unwrap();
        for exec in execs() {
            let mut y = vec![0f32; c.tokens * c.rows];
            m.gemm_i8(&c.x, c.tokens, &mut y, &exec).unwrap();
            assert_eq!(bits(&y), bits(&c.y), "{} on {:?}", c.name, exec);
            if c.cols % 256 == 0 {
                let q = m.as_qk256().unwrap();
                let mut yq = vec![0f32; c.tokens * c.rows];
                q.gemm_i8(&c.x, c.tokens, &mut yq, &exec).unwrap();
                assert_eq!(bits(&yq), bits(&c.y), "{} as QK256 on {:?}", c.name, exec);
            }
        }
    }
}

#[test]
fn tq_pack_and_unpack_reproduce_gguf_py() {
    for c in tq_cases() {
        let mut w = vec![0f32; c.rows * c.cols];
        match c.format {
            TqFormat::Tq2_0 => {
                let p = Tq2_0::quantize(&c.input, c.rows, c.cols).unwrap();
                assert_eq!(p.bytes(), &c.packed[..], "{}", c.name);
                Tq2_0::new(c.rows, c.cols, &c.packed[..])
                    .unwrap()
                    .dequantize(&mut w)
                    .unwrap();
            }
            TqFormat::Tq1_0 => {
                let p = Tq1_0::quantize(&c.input, c.rows, c.cols).unwrap();
                assert_eq!(p.bytes(), &c.packed[..], "{}", c.name);
                Tq1_0::new(c.rows, c.cols, &c.packed[..])
                    .unwrap()
                    .dequantize(&mut w)
                    .unwrap();
            }
        }
        assert_eq!(bits(&w), bits(&c.dequant), "{}", c.name);
    }
}
