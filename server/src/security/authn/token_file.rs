//! Static bearer tokens from a CSV file (`--token-file`), in the format kube-apiserver reads:
//!
//! ```text
//! token,user,uid,"group1,group2"
//! ```
//!
//! At least three columns (token, user name, uid); the fourth, optional, is a comma-separated
//! group list, quoted when it holds more than one group. Blank lines and lines starting with
//! `#` are skipped. The file is read once at start.

use std::collections::HashMap;
use std::path::Path;

use super::{UserInfo, AUTHENTICATED};

#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("reading the token file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    // Never the token itself: the message may reach logs.
    #[error("token file line {line}: {why}")]
    Line { line: usize, why: String },
}

/// The users of a token file, by token.
pub struct TokenFile {
    users: HashMap<String, UserInfo>,
}

// Hand-written so that no token ever reaches a log through `{:?}`.
impl std::fmt::Debug for TokenFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenFile({} tokens)", self.users.len())
    }
}

impl TokenFile {
    pub fn load(path: &Path) -> Result<TokenFile, TokenFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Io {
            path: path.display().to_string(),
            source,
        })?;
        TokenFile::parse(&text)
    }

    pub fn parse(text: &str) -> Result<TokenFile, TokenFileError> {
        let mut users = HashMap::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let fields = csv_fields(trimmed).map_err(|why| TokenFileError::Line { line, why })?;
            if fields.len() < 3 {
                return Err(TokenFileError::Line {
                    line,
                    why: format!(
                        "needs at least 3 columns (token, user name, uid), found {}",
                        fields.len()
                    ),
                });
            }
            let (token, name, uid) = (&fields[0], &fields[1], &fields[2]);
            if token.is_empty() || name.is_empty() {
                return Err(TokenFileError::Line {
                    line,
                    why: "empty token or user name".to_string(),
                });
            }
            let mut groups: Vec<String> = fields
                .get(3)
                .map(|g| {
                    g.split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            groups.push(AUTHENTICATED.to_string());
            let user = UserInfo {
                name: name.clone(),
                uid: uid.clone(),
                groups,
                ..UserInfo::default()
            };
            if users.insert(token.clone(), user).is_some() {
                return Err(TokenFileError::Line {
                    line,
                    why: "the token appears on an earlier line too".to_string(),
                });
            }
        }
        Ok(TokenFile { users })
    }

    pub fn authenticate(&self, token: &str) -> Option<UserInfo> {
        self.users.get(token).cloned()
    }
}

/// One CSV record: commas separate fields; a field may be double-quoted, with `""` for a
/// quote inside; spaces before a field are ignored.
fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') || chars.peek() == Some(&'\t') {
            chars.next();
        }
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("a quoted field is not closed".to_string()),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(_) => return Err("text after a closing quote".to_string()),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field.trim_end().to_string());
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some('"') => return Err("a quote inside an unquoted field".to_string()),
                    Some(c) => field.push(c),
                }
            }
            fields.push(field.trim_end().to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_groups_and_quoted_group_lists() {
        let file = TokenFile::parse(
            "# tokens for the team\n\
             s3cret,alice,u-1,\"dev,ops\"\n\
             \n\
             other, bob , u-2\n\
             third,carol,u-3,admins\n",
        )
        .unwrap();
        assert_eq!(file.users.len(), 3);
        let alice = file.authenticate("s3cret").unwrap();
        assert_eq!(alice.name, "alice");
        assert_eq!(alice.uid, "u-1");
        assert_eq!(alice.groups, ["dev", "ops", AUTHENTICATED]);
        let bob = file.authenticate("other").unwrap();
        assert_eq!((bob.name.as_str(), bob.groups.len()), ("bob", 1));
        assert_eq!(
            file.authenticate("third").unwrap().groups,
            ["admins", AUTHENTICATED]
        );
        assert!(file.authenticate("s3cre").is_none());
        assert!(file.authenticate("").is_none());
    }

    #[test]
    fn bad_lines_are_reported_without_the_token() {
        for text in [
            "onlytoken,user\n",
            "tok,\"alice,u1\n",
            "tok,al\"ice,u1\n",
            ",alice,u1\n",
            "dup,a,1\ndup,b,2\n",
        ] {
            let err = TokenFile::parse(text).expect_err(text).to_string();
            assert!(err.starts_with("token file line"), "{err}");
            assert!(!err.contains("tok,") && !err.contains("dup,"), "{err}");
        }
    }

    #[test]
    fn quotes_inside_quoted_fields() {
        assert_eq!(
            csv_fields(r#"a,"b ""c""",d"#).unwrap(),
            ["a", "b \"c\"", "d"]
        );
    }
}
