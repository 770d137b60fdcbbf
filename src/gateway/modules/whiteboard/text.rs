//! Collaborative text edits that arrive as events: a browser sends what it typed as one
//! change (`at`, `delete`, `insert`, in UTF-16 code units, as JavaScript counts) against the
//! text it showed (`base`). Others may have changed the text since; the change is moved onto
//! the text as it is now by where the two differ (a common prefix and suffix), so typing in
//! one place and typing in another both stay. In the region both changed, the one already
//! applied wins: the new change goes at its end and deletes nothing of it.

use yrs::OffsetKind;

/// The char index of UTF-16 position `pos` in `s` (`None` past the end). A position inside
/// a surrogate pair counts as the start of the pair.
pub fn utf16_to_char(s: &[char], pos: usize) -> Option<usize> {
    let mut units = 0;
    for (i, c) in s.iter().enumerate() {
        if units >= pos {
            return Some(i);
        }
        units += c.len_utf16();
        if units > pos {
            return Some(i);
        }
    }
    (units == pos).then_some(s.len())
}

/// Where position `pos` of `base` is in `current`.
pub fn map_position(base: &[char], current: &[char], pos: usize) -> usize {
    let prefix = base
        .iter()
        .zip(current.iter())
        .take_while(|(a, b)| a == b)
        .count();
    let max_suffix = base.len().min(current.len()) - prefix;
    let suffix = base
        .iter()
        .rev()
        .zip(current.iter().rev())
        .take(max_suffix)
        .take_while(|(a, b)| a == b)
        .count();
    if pos < prefix {
        pos
    } else if pos > base.len() - suffix {
        pos + current.len() - base.len()
    } else {
        // In (or at the edge of) the region the text changed in: after that change.
        current.len() - suffix
    }
}

/// The offset yrs expects for char index `i` of `s`.
pub fn offset(s: &[char], i: usize, kind: OffsetKind) -> u32 {
    let head = &s[..i.min(s.len())];
    let n: usize = match kind {
        OffsetKind::Bytes => head.iter().map(|c| c.len_utf8()).sum(),
        OffsetKind::Utf16 => head.iter().map(|c| c.len_utf16()).sum(),
    };
    n as u32
}

/// An edit against `base`, moved onto `current`: the char range of `current` to replace.
pub fn rebase(
    base: &str,
    current: &str,
    at: usize,
    delete: usize,
) -> Option<(Vec<char>, usize, usize)> {
    let b: Vec<char> = base.chars().collect();
    let c: Vec<char> = current.chars().collect();
    let start = utf16_to_char(&b, at)?;
    let end = utf16_to_char(&b, at.checked_add(delete)?)?;
    let from = map_position(&b, &c, start);
    let to = map_position(&b, &c, end).max(from);
    Some((c, from, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(base: &str, current: &str, at: usize, delete: usize, insert: &str) -> String {
        let (c, from, to) = rebase(base, current, at, delete).expect("in range");
        let mut out: String = c[..from].iter().collect();
        out.push_str(insert);
        out.extend(c[to..].iter());
        out
    }

    #[test]
    fn an_edit_moves_onto_what_others_typed() {
        // Nobody else typed: the edit applies as sent.
        assert_eq!(apply("hello", "hello", 5, 0, "!"), "hello!");
        assert_eq!(apply("hello", "hello", 1, 3, "ipp"), "hippo");
        // Someone typed before the edit: it moves right.
        assert_eq!(apply("world", "hello world", 5, 0, "!"), "hello world!");
        // Someone typed after it: it stays.
        assert_eq!(apply("ab", "abXYZ", 1, 0, "-"), "a-bXYZ");
        // Someone deleted before it.
        assert_eq!(
            apply("one two three", "two three", 13, 0, "."),
            "two three."
        );
        // Both typed at the same place: the earlier one stays, the new one goes after it.
        assert_eq!(apply("ab", "aXb", 1, 0, "Y"), "aXYb");
        // A delete over text someone just changed keeps their change.
        assert_eq!(apply("hello", "hELLo", 2, 2, ""), "hELLo");
    }

    #[test]
    fn positions_count_utf16_like_javascript() {
        // "😀" is two UTF-16 units; "é" one.
        assert_eq!(apply("😀é", "😀é", 3, 0, "x"), "😀éx");
        assert_eq!(apply("😀é", "😀é", 2, 1, ""), "😀");
        assert!(rebase("ab", "ab", 3, 0).is_none());
        assert!(rebase("ab", "ab", 1, 5).is_none());
        let s: Vec<char> = "😀é".chars().collect();
        assert_eq!(offset(&s, 1, OffsetKind::Bytes), 4);
        assert_eq!(offset(&s, 2, OffsetKind::Utf16), 3);
    }
}
