//! Chat prompts: the model's own Jinja chat template (`tokenizer.chat_template`, rendered
//! with minijinja the way HF `transformers` does: `trim_blocks`, `lstrip_blocks`,
//! `messages`, `add_generation_prompt`, `bos_token`, `eos_token`), or a plain
//! `User:` / `Assistant:` transcript when the file has no template.

use minijinja::{Environment, Error, ErrorKind, context};

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

impl ChatMessage {
    /// A message with `role` and `content`.
    pub fn new(role: &str, content: &str) -> ChatMessage {
        ChatMessage {
            role: role.to_owned(),
            content: content.to_owned(),
        }
    }
}

/// How a conversation becomes prompt text.
#[derive(Debug, Clone)]
pub enum ChatFormat {
    /// A Jinja template with the BOS/EOS texts it may reference.
    Template {
        source: String,
        bos: String,
        eos: String,
    },
    /// `User: ...\nAssistant: ...\n` lines.
    Plain,
}

/// The text after which a plain-format reply is cut (the model starting the next turn).
pub const PLAIN_STOP: &str = "\nUser:";

impl ChatFormat {
    /// Short description for messages.
    pub fn describe(&self) -> &'static str {
        match self {
            ChatFormat::Template { .. } => "the model's chat template",
            ChatFormat::Plain => "plain User:/Assistant: format (no chat template in the file)",
        }
    }

    /// Renders `messages`, ending with the assistant's turn opener when
    /// `add_generation_prompt`.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, String> {
        match self {
            ChatFormat::Template { source, bos, eos } => {
                let mut env = Environment::new();
                env.set_trim_blocks(true);
                env.set_lstrip_blocks(true);
                env.set_unknown_method_callback(
                    minijinja_contrib::pycompat::unknown_method_callback,
                );
                env.add_function("raise_exception", |msg: String| -> Result<String, Error> {
                    Err(Error::new(ErrorKind::InvalidOperation, msg))
                });
                env.render_str(
                    source,
                    context! {
                        messages => messages,
                        add_generation_prompt => add_generation_prompt,
                        bos_token => bos,
                        eos_token => eos,
                    },
                )
                .map_err(|e| format!("chat template: {e}"))
            }
            ChatFormat::Plain => {
                let mut s = String::new();
                for m in messages {
                    let role = match m.role.as_str() {
                        "user" => "User",
                        "assistant" => "Assistant",
                        "system" => "System",
                        other => other,
                    };
                    s.push_str(role);
                    s.push_str(": ");
                    s.push_str(m.content.trim());
                    s.push('\n');
                }
                if add_generation_prompt {
                    s.push_str("Assistant:");
                }
                Ok(s)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_format() {
        let m = [
            ChatMessage::new("user", " hi "),
            ChatMessage::new("assistant", "hello"),
        ];
        assert_eq!(
            ChatFormat::Plain.render(&m, true).unwrap(),
            "User: hi\nAssistant: hello\nAssistant:"
        );
    }

    #[test]
    fn bitnet_2b4t_style_template() {
        // The shape of the 2B-4T template: `Role: content<|eot_id|>`, BOS first.
        let source = "{% for message in messages %}{% set content = message['role'] | capitalize + ': ' + message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ 'Assistant: ' }}{% endif %}";
        let f = ChatFormat::Template {
            source: source.into(),
            bos: "<|begin_of_text|>".into(),
            eos: "<|end_of_text|>".into(),
        };
        let m = [ChatMessage::new("user", "Hi there ")];
        assert_eq!(
            f.render(&m, true).unwrap(),
            "<|begin_of_text|>User: Hi there<|eot_id|>Assistant: "
        );
    }

    #[test]
    fn python_methods_and_raise_exception() {
        let f = ChatFormat::Template {
            source: "{% for m in messages %}{{ m.content.strip() }}{% endfor %}{% if messages|length > 1 %}{{ raise_exception('too many') }}{% endif %}".into(),
            bos: String::new(),
            eos: String::new(),
        };
        assert_eq!(
            f.render(&[ChatMessage::new("user", " x ")], false).unwrap(),
            "x"
        );
        let two = [ChatMessage::new("user", "a"), ChatMessage::new("user", "b")];
        assert!(f.render(&two, false).unwrap_err().contains("too many"));
    }
}
