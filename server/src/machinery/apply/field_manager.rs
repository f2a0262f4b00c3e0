//! Who made a write: the `fieldManager` query parameter, or a name derived from the
//! User-Agent, under kube-apiserver's rules for manager names.

/// The longest field manager name kube-apiserver accepts.
pub const FIELD_MANAGER_MAX_LENGTH: usize = 128;

/// The manager of an apply: `?fieldManager=`, which apply requires.
pub fn apply_field_manager(query: Option<&str>) -> Result<String, String> {
    match query.filter(|m| !m.is_empty()) {
        Some(manager) => {
            check_field_manager(manager).map_err(|why| format!("fieldManager: {why}"))?;
            Ok(manager.to_string())
        }
        None => Err("fieldManager: Required value: is required for apply patch".into()),
    }
}

/// The manager of a write: `?fieldManager=` if given (and valid), else the User-Agent up to
/// its first `/`, printable characters only, cut to the maximum length, as kube-apiserver
/// derives it.
pub fn field_manager(query: Option<&str>, user_agent: Option<&str>) -> Result<String, String> {
    if let Some(manager) = query.filter(|m| !m.is_empty()) {
        check_field_manager(manager).map_err(|why| format!("fieldManager: {why}"))?;
        return Ok(manager.to_string());
    }
    let prefix = user_agent
        .unwrap_or_default()
        .split('/')
        .next()
        .unwrap_or_default();
    let mut out = String::new();
    for c in prefix.chars().filter(|c| printable(*c)) {
        if out.len() + c.len_utf8() > FIELD_MANAGER_MAX_LENGTH {
            break;
        }
        out.push(c);
    }
    Ok(out)
}

/// kube-apiserver's rules for a manager name: at most 128 bytes, printable characters.
pub(crate) fn check_field_manager(manager: &str) -> Result<(), String> {
    if manager.len() > FIELD_MANAGER_MAX_LENGTH {
        return Err(format!(
            "Too long: may not be more than {FIELD_MANAGER_MAX_LENGTH} bytes"
        ));
    }
    match manager.char_indices().find(|(_, c)| !printable(*c)) {
        Some((i, c)) => Err(format!(
            "Invalid value: {manager:?}: invalid character U+{:04X} (at position {i})",
            c as u32
        )),
        None => Ok(()),
    }
}

/// Go's `unicode.IsPrint`, near enough: no control characters, and ASCII space the only space.
fn printable(c: char) -> bool {
    !c.is_control() && (c == ' ' || !c.is_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managers_come_from_the_query_or_the_user_agent() {
        assert_eq!(
            field_manager(Some("mine"), Some("kubectl/v1.31")).unwrap(),
            "mine"
        );
        assert_eq!(
            field_manager(None, Some("kubectl/v1.31.0 (linux/amd64) kubernetes/abc")).unwrap(),
            "kubectl"
        );
        assert_eq!(field_manager(None, None).unwrap(), "");
        assert_eq!(field_manager(None, Some("a\u{7}b/x")).unwrap(), "ab");
        assert_eq!(
            field_manager(None, Some(&"x".repeat(300))).unwrap().len(),
            128
        );
        assert!(field_manager(Some(&"x".repeat(129)), None).is_err());
        assert!(field_manager(Some("a\nb"), None).is_err());
        assert_eq!(apply_field_manager(Some("kubectl")).unwrap(), "kubectl");
        assert_eq!(
            apply_field_manager(None).unwrap_err(),
            "fieldManager: Required value: is required for apply patch"
        );
    }
}
