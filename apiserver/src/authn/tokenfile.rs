//! `--token-auth-file`: static bearer tokens from a CSV file.
//!
//! Each record is `token,user,uid[,"group1,group2"]`, read with the CSV rules
//! upstream uses (Go's `encoding/csv`, leading spaces trimmed, variable field
//! counts, strict quoting): fewer than 3 columns fails the load; a record with
//! an empty token is skipped; a repeated token is overridden by the later
//! record; the 4th column is split on commas into groups.

use crate::server::User;
use std::collections::HashMap;
use std::path::Path;

/// One token's identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenEntry {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
}

/// The loaded token file.
#[derive(Clone, Debug, Default)]
pub struct TokenFile {
    tokens: HashMap<String, TokenEntry>,
}

impl TokenFile {
    /// Read and parse the file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, String> {
        let path = path.as_ref();
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("reading token file '{}': {e}", path.display()))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parse CSV `text`; `source` names the file in errors.
    pub fn parse(text: &str, source: &str) -> Result<Self, String> {
        let records = parse_csv(text).map_err(|e| format!("token file '{source}': {e}"))?;
        let mut tokens = HashMap::new();
        for (i, record) in records.into_iter().enumerate() {
            if record.len() < 3 {
                return Err(format!(
                    "token file '{source}' must have at least 3 columns (token, user name, user uid), found {}",
                    record.len()
                ));
            }
            if record[0].is_empty() {
                tracing::warn!("empty token has been found in token file '{source}', record number '{}'", i + 1);
                continue;
            }
            let groups = match record.get(3) {
                Some(g) => g.split(',').filter(|g| !g.is_empty()).map(str::to_string).collect(),
                None => Vec::new(),
            };
            let entry = TokenEntry { name: record[1].clone(), uid: record[2].clone(), groups };
            if tokens.insert(record[0].clone(), entry).is_some() {
                tracing::warn!("duplicate token has been found in token file '{source}', record number '{}'", i + 1);
            }
        }
        Ok(Self { tokens })
    }

    /// The identity a token stands for, as written in the file.
    pub fn entry(&self, token: &str) -> Option<&TokenEntry> {
        self.tokens.get(token)
    }

    /// The user a bearer token authenticates as, with `system:authenticated` added.
    pub fn authenticate(&self, token: &str) -> Option<User> {
        let e = self.entry(token)?;
        let mut groups = e.groups.clone();
        if !groups.iter().any(|g| g == super::AUTHENTICATED_GROUP) {
            groups.push(super::AUTHENTICATED_GROUP.to_string());
        }
        Some(User { name: e.name.clone(), groups })
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

/// Go `encoding/csv` with `TrimLeadingSpace` and `FieldsPerRecord = -1`:
/// empty lines are skipped, `""` inside quotes is a quote, quoted fields may
/// span lines, a bare `"` in an unquoted field or text after a closing quote is an error.
fn parse_csv(text: &str) -> Result<Vec<Vec<String>>, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let chars: Vec<char> = text.chars().collect();
    let mut records = Vec::new();
    let mut i = 0;
    let mut line = 1;
    let at_eol = |c: &[char], i: usize| i >= c.len() || c[i] == '\n' || (c[i] == '\r' && c.get(i + 1) == Some(&'\n'));
    let skip_eol = |c: &[char], i: usize| -> usize { if i < c.len() && c[i] == '\r' { i + 2 } else { i + 1 } };
    while i < chars.len() {
        // Skip an empty line.
        if at_eol(&chars, i) {
            i = skip_eol(&chars, i);
            line += 1;
            continue;
        }
        let record_line = line;
        let mut record = Vec::new();
        loop {
            while i < chars.len() && chars[i] != '\n' && chars[i] != '\r' && chars[i].is_whitespace() {
                i += 1;
            }
            let mut field = String::new();
            if i < chars.len() && chars[i] == '"' {
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(format!(
                                "record on line {record_line}: extraneous or missing \" in quoted-field"
                            ));
                        }
                        Some('"') if chars.get(i + 1) == Some(&'"') => {
                            field.push('"');
                            i += 2;
                        }
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some('\r') if chars.get(i + 1) == Some(&'\n') => {
                            field.push('\n');
                            i += 2;
                            line += 1;
                        }
                        Some(c) => {
                            if *c == '\n' {
                                line += 1;
                            }
                            field.push(*c);
                            i += 1;
                        }
                    }
                }
                if !(at_eol(&chars, i) || chars[i] == ',') {
                    return Err(format!(
                        "record on line {record_line}; parse error on line {line}: extraneous or missing \" in quoted-field"
                    ));
                }
            } else {
                while !at_eol(&chars, i) && chars[i] != ',' {
                    if chars[i] == '"' {
                        return Err(format!("parse error on line {line}: bare \" in non-quoted-field"));
                    }
                    field.push(chars[i]);
                    i += 1;
                }
            }
            record.push(field);
            if i < chars.len() && chars[i] == ',' {
                i += 1;
                continue;
            }
            break;
        }
        if i < chars.len() {
            i = skip_eol(&chars, i);
            line += 1;
        }
        records.push(record);
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<TokenFile, String> {
        TokenFile::parse(s, "t.csv")
    }

    #[test]
    fn basic_record_with_quoted_groups() {
        let f = parse("abc123,alice,1001,\"system:masters,dev\"\n").unwrap();
        let u = f.authenticate("abc123").unwrap();
        assert_eq!(u.name, "alice");
        assert_eq!(u.groups, vec!["system:masters", "dev", "system:authenticated"]);
        assert_eq!(f.entry("abc123").unwrap().uid, "1001");
        assert!(f.authenticate("abc12").is_none());
        assert!(f.authenticate("").is_none());
    }

    #[test]
    fn three_columns_no_groups_and_crlf_and_blank_lines() {
        let f = parse("\r\nt1,bob,2\r\n\r\nt2, carol, 3 \n").unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f.authenticate("t1").unwrap().groups, vec!["system:authenticated"]);
        // Leading spaces are trimmed, trailing ones kept (Go's TrimLeadingSpace).
        assert_eq!(f.entry("t2").unwrap().name, "carol");
        assert_eq!(f.entry("t2").unwrap().uid, "3 ");
    }

    #[test]
    fn too_few_columns_fails() {
        let e = parse("t1,bob\n").unwrap_err();
        assert!(e.contains("must have at least 3 columns"), "{e}");
        assert!(e.contains("found 2"), "{e}");
        assert!(parse("t1,bob,1\nonlyone\n").is_err());
    }

    #[test]
    fn empty_token_skipped_duplicate_later_wins() {
        let f = parse(",nobody,0\nt,first,1\nt,second,2,g\n").unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f.entry("t").unwrap().name, "second");
        assert_eq!(f.authenticate("t").unwrap().groups, vec!["g", "system:authenticated"]);
    }

    #[test]
    fn quoting_rules() {
        let f = parse("\"tok,en\",\"a \"\"q\"\" user\",1,\"x\ny\"\n").unwrap();
        let e = f.entry("tok,en").unwrap();
        assert_eq!(e.name, "a \"q\" user");
        assert_eq!(e.groups, vec!["x\ny"]);
        assert!(parse("t,bo\"b,1\n").unwrap_err().contains("bare \""));
        assert!(parse("t,\"bob\"x,1\n").is_err());
        assert!(parse("t,\"bob,1\n").is_err());
    }

    #[test]
    fn system_authenticated_not_duplicated_and_empty_groups_dropped() {
        let f = parse("t,u,1,\"system:authenticated,,a\"").unwrap();
        assert_eq!(f.authenticate("t").unwrap().groups, vec!["system:authenticated", "a"]);
        let f = parse("t,u,1,").unwrap();
        assert_eq!(f.authenticate("t").unwrap().groups, vec!["system:authenticated"]);
    }

    #[test]
    fn load_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tokens.csv");
        std::fs::write(&p, "secret,admin,admin,system:masters\n").unwrap();
        let f = TokenFile::load(&p).unwrap();
        assert_eq!(f.authenticate("secret").unwrap().groups, vec!["system:masters", "system:authenticated"]);
        assert!(TokenFile::load(dir.path().join("missing.csv")).is_err());
    }
}
