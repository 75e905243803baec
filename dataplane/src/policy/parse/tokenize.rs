//! The tokenizer: a line split as iptables-restore splits it.

use super::ParseErrorKind;

/// Split a line into tokens as iptables-restore does: whitespace separates, `"..."`
/// groups (so `--comment "allow ssh"` is two tokens), and inside quotes `\"` and `\\`
/// stand for `"` and `\`. `""` is an empty token.
pub fn tokenize(line: &str) -> Result<Vec<String>, ParseErrorKind> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut in_token = false;
    let mut quoted = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' => quoted = false,
                '\\' => match chars.next() {
                    Some(e @ ('"' | '\\')) => current.push(e),
                    Some(other) => {
                        current.push('\\');
                        current.push(other);
                    }
                    None => return Err(ParseErrorKind::UnterminatedQuote),
                },
                c => current.push(c),
            }
        } else if c.is_whitespace() {
            if in_token {
                tokens.push(std::mem::take(&mut current));
                in_token = false;
            }
        } else if c == '"' {
            quoted = true;
            in_token = true;
        } else {
            current.push(c);
            in_token = true;
        }
    }
    if quoted {
        return Err(ParseErrorKind::UnterminatedQuote);
    }
    if in_token {
        tokens.push(current);
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tokenizer_handles_quotes_and_escapes() {
        assert_eq!(tokenize("  -A  FORWARD\t-j ACCEPT ").unwrap(), ["-A", "FORWARD", "-j", "ACCEPT"]);
        assert_eq!(
            tokenize(r#"--comment "allow \"ssh\" \\ now" -j X"#).unwrap(),
            ["--comment", r#"allow "ssh" \ now"#, "-j", "X"]
        );
        assert_eq!(tokenize(r#"a "" b"#).unwrap(), ["a", "", "b"]);
        assert_eq!(tokenize(r#"x"y z"w"#).unwrap(), ["xy zw"]);
        assert_eq!(tokenize(r#""\n""#).unwrap(), [r"\n"]);
        assert_eq!(tokenize(r#"a "b"#), Err(ParseErrorKind::UnterminatedQuote));
        assert_eq!(tokenize(r#"a "b\"#), Err(ParseErrorKind::UnterminatedQuote));
        assert!(tokenize("").unwrap().is_empty());
    }

    proptest! {
        #[test]
        fn random_text_never_panics(text in "\\PC{0,200}") {
            let _ = tokenize(&text);
        }

        /// Tokens without quotes, backslashes or whitespace come back as they were.
        #[test]
        fn plain_tokens_survive(tokens in proptest::collection::vec("[!-~&&[^\"\\\\]]{1,12}", 0..10)) {
            prop_assert_eq!(tokenize(&tokens.join(" ")).unwrap(), tokens);
        }
    }
}
