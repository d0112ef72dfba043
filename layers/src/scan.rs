//! A JSON scanner that finds the top-level members of a JSON-RPC envelope without parsing values.
//!
//! serde_json's `RawValue` still walks every byte of a value it keeps raw, one at a time: for a
//! 1 MiB `engine_newPayload`, that is most of a millisecond spent learning where `params` ends.
//! Here a string body is skipped with `memchr`, which finds its closing quote at memory speed.
//!
//! The envelope's own syntax is checked strictly (object, keys, colons, commas, one value each,
//! nothing after the end, and every top-level string and number exactly as JSON spells them: we
//! echo the id and route on the method). Nested values are checked for balanced brackets and
//! terminated strings only: their contents are the upstream's to judge, and it answers malformed
//! ones itself.
//!
//! The same walk also finds a few members of a larger object without judging the others (a
//! forkchoice update's attributes, an upstream's answer: [`members_loosely`]), and splits
//! forkchoice params at their first element ([`head_and_rest`]). Whoever reads a span found so
//! decodes it.

use std::ops::Range;

/// Why a text is not a well-formed envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ScanError {
    /// Not JSON where JSON was expected, or truncated.
    Syntax,
    /// Well-formed, but not an object (a batch element or body that is a number, a string...).
    NotAnObject,
    /// A member appears twice: decoders disagree on which one counts, so none does.
    DuplicateMember,
    /// A key is escaped (it could spell `method`): only a full decoder can tell.
    NeedsDecoder,
}

/// Where the members of interest sit in the scanned text.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Members {
    pub(crate) method: Option<Range<usize>>,
    pub(crate) id: Option<Range<usize>>,
    pub(crate) params: Option<Range<usize>>,
}

pub(crate) fn skip_ws(bytes: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = bytes.get(i) {
        i += 1;
    }
    i
}

/// A JSON string written `"0x"` and exactly `2 × N` hex digits, as its `N` bytes; `None` for any
/// other form (whose reader then decodes it).
#[cfg(feature = "engine")]
pub(crate) fn hex_literal<const N: usize>(raw: &[u8]) -> Option<[u8; N]> {
    let digits = raw.strip_prefix(b"\"0x")?.strip_suffix(b"\"")?;
    let mut bytes = [0u8; N];
    alloy_primitives::hex::decode_to_slice(digits, &mut bytes).ok()?;
    Some(bytes)
}

/// `i` is at an opening quote; returns the index just past the closing one.
fn skip_string(bytes: &[u8], i: usize) -> Result<usize, ScanError> {
    let mut at = i + 1;
    loop {
        let rest = bytes.get(at..).ok_or(ScanError::Syntax)?;
        match memchr::memchr2(b'"', b'\\', rest) {
            Some(offset) if rest[offset] == b'"' => return Ok(at + offset + 1),
            // An escape: the next byte is taken literally (`\"` does not close the string).
            Some(offset) => at += offset + 2,
            None => return Err(ScanError::Syntax),
        }
    }
}

/// `i` is at an opening quote; like [`skip_string`], but the contents must be valid JSON too: no
/// raw control characters, UTF-8 throughout, and only JSON's escapes. For the envelope's own (short) strings.
fn skip_string_strictly(bytes: &[u8], i: usize) -> Result<usize, ScanError> {
    // Printable ASCII without escapes, as nearly every key and method is: valid as it stands,
    // and one pass both finds the closing quote and vouches for what comes before it.
    if let Some(end) = plain_string_end::<true>(bytes, i) {
        return Ok(end);
    }
    let end = skip_string(bytes, i)?;
    let text = &bytes[i..end];
    if text.iter().any(|&b| b < 0x20) || std::str::from_utf8(text).is_err() {
        return Err(ScanError::Syntax);
    }
    if text.contains(&b'\\') && serde_json::from_slice::<serde::de::IgnoredAny>(text).is_err() {
        return Err(ScanError::Syntax);
    }
    Ok(end)
}

/// `i` is at the first byte of a number; returns the index just past it. JSON's grammar exactly:
/// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
fn skip_number(bytes: &[u8], i: usize) -> Result<usize, ScanError> {
    let digits = |at: usize| {
        let n = bytes.get(at..).map_or(0, |rest| {
            rest.iter().take_while(|b| b.is_ascii_digit()).count()
        });
        if n == 0 {
            Err(ScanError::Syntax)
        } else {
            Ok(at + n)
        }
    };
    let mut at = i + usize::from(bytes.get(i) == Some(&b'-'));
    at = match bytes.get(at) {
        Some(b'0') => at + 1,
        Some(b'1'..=b'9') => digits(at)?,
        _ => return Err(ScanError::Syntax),
    };
    if bytes.get(at) == Some(&b'.') {
        at = digits(at + 1)?;
    }
    if let Some(b'e' | b'E') = bytes.get(at) {
        at += 1;
        if let Some(b'+' | b'-') = bytes.get(at) {
            at += 1;
        }
        at = digits(at)?;
    }
    Ok(at)
}

/// Closing brackets kept on the stack before it spills to the heap: deeper than any Engine API
/// value, so a scan allocates nothing.
const INLINE_DEPTH: usize = 64;

/// `i` is at `{` or `[`; returns the index just past the matching close.
fn skip_nested(bytes: &[u8], i: usize) -> Result<usize, ScanError> {
    let mut inline = [0u8; INLINE_DEPTH];
    let mut spilled: Vec<u8> = Vec::new();
    let mut depth = 0;
    let mut at = i;
    while let Some(&b) = bytes.get(at) {
        match b {
            b'"' => {
                at = skip_string(bytes, at)?;
                continue;
            }
            b'{' | b'[' => {
                let close = if b == b'{' { b'}' } else { b']' };
                match inline.get_mut(depth) {
                    Some(slot) => *slot = close,
                    None => spilled.push(close),
                }
                depth += 1;
            }
            b'}' | b']' => {
                let expected = match depth.checked_sub(1) {
                    None => return Err(ScanError::Syntax),
                    Some(top) if top < INLINE_DEPTH => inline[top],
                    Some(_) => spilled.pop().unwrap_or_default(),
                };
                if expected != b {
                    return Err(ScanError::Syntax);
                }
                depth -= 1;
                if depth == 0 {
                    return Ok(at + 1);
                }
            }
            _ => {}
        }
        at += 1;
    }
    Err(ScanError::Syntax)
}

/// `i` is at the first byte of a top-level value; returns the index just past it.
fn skip_value(bytes: &[u8], i: usize) -> Result<usize, ScanError> {
    match bytes.get(i) {
        Some(b'"') => skip_string_strictly(bytes, i),
        Some(b'{' | b'[') => skip_nested(bytes, i),
        Some(b't') if bytes[i..].starts_with(b"true") => Ok(i + 4),
        Some(b'f') if bytes[i..].starts_with(b"false") => Ok(i + 5),
        Some(b'n') if bytes[i..].starts_with(b"null") => Ok(i + 4),
        Some(b'-' | b'0'..=b'9') => skip_number(bytes, i),
        _ => Err(ScanError::Syntax),
    }
}

/// `i` is at the first byte of a value; returns the index just past it, finding its end only:
/// a string's closing quote, a nested value's closing bracket, a literal's or number's
/// delimiter.
fn skip_value_loosely(bytes: &[u8], i: usize) -> Result<usize, ScanError> {
    match bytes.get(i) {
        Some(b'"') => skip_string(bytes, i),
        Some(b'{' | b'[') => skip_nested(bytes, i),
        Some(_) => {
            let rest = &bytes[i..];
            let len = rest
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                .unwrap_or(rest.len());
            if len == 0 {
                Err(ScanError::Syntax)
            } else {
                Ok(i + len)
            }
        }
        None => Err(ScanError::Syntax),
    }
}

/// Scans one JSON object: the spans of its `method`, `id` and `params` members.
pub(crate) fn object(bytes: &[u8]) -> Result<Members, ScanError> {
    let [method, id, params] = members(bytes, [b"method", b"id", b"params"])?;
    Ok(Members { method, id, params })
}

/// Scans one JSON object: the span of the member named by each of `keys`, in their order; the
/// other members are checked and passed over.
pub(crate) fn members<const N: usize>(
    bytes: &[u8],
    keys: [&[u8]; N],
) -> Result<[Option<Range<usize>>; N], ScanError> {
    members_with::<N, true>(bytes, keys)
}

/// As [`members`], but top-level strings and literals are only delimited, not checked: for
/// finding a few members in an object whose other members are not ours to judge (whoever reads
/// a span found here decodes it).
pub(crate) fn members_loosely<const N: usize>(
    bytes: &[u8],
    keys: [&[u8]; N],
) -> Result<[Option<Range<usize>>; N], ScanError> {
    members_with::<N, false>(bytes, keys)
}

fn members_with<const N: usize, const STRICT: bool>(
    bytes: &[u8],
    keys: [&[u8]; N],
) -> Result<[Option<Range<usize>>; N], ScanError> {
    let i = object_start(bytes)?;
    let (found, end) = object_members::<N, STRICT>(bytes, i, keys, |_, _| Ok(None))?;
    end_of_text(bytes, end).map(|()| found)
}

/// As [`members_loosely`], and the member named `outer`, when it is an object, is scanned for
/// `inner` in the same pass (not delimited first and walked again): a forkchoice answer's
/// `result.payloadId`. The inner spans are `None` when `outer` is absent or not an object.
#[cfg(feature = "engine")]
pub(crate) fn members_loosely_nested<const N: usize, const M: usize>(
    bytes: &[u8],
    keys: [&[u8]; N],
    outer: &[u8],
    inner: [&[u8]; M],
) -> Result<NestedMembers<N, M>, ScanError> {
    // A path of one step, whose value is read as an object when it is one.
    let (found, read) = members_loosely_along(bytes, keys, &[outer], |start| {
        if bytes.get(start) != Some(&b'{') {
            return Ok((None, skip_value_loosely(bytes, start)?));
        }
        let (spans, end) = object_members::<M, false>(bytes, start, inner, |_, _| Ok(None))?;
        Ok((Some(spans), end))
    })?;
    Ok((found, read.and_then(|(spans, _)| spans)))
}

/// As [`members_loosely`], and the value at `path` (a member of the object before it at each
/// step; each step but the last an object) is handed to `read`, which walks it itself and
/// returns what it read and where the value ends. One pass: delimiting each step and then
/// scanning inside it would walk the innermost value once per step, and for a payload's
/// transactions that is nearly every byte. `None` when the path is not there.
#[cfg(feature = "engine")]
pub(crate) fn members_loosely_along<const N: usize, T>(
    bytes: &[u8],
    keys: [&[u8]; N],
    path: &[&[u8]],
    mut read: impl FnMut(usize) -> Result<(T, usize), ScanError>,
) -> Result<(Spans<N>, Option<Read<T>>), ScanError> {
    let i = object_start(bytes)?;
    let mut found = None;
    let (spans, end) = object_members::<N, false>(bytes, i, keys, |key, start| {
        step_along(bytes, key, start, path, &mut read, &mut found)
    })?;
    end_of_text(bytes, end).map(|()| (spans, found))
}

/// What `read` made of the value at the path's end, and the value's span.
#[cfg(feature = "engine")]
pub(crate) type Read<T> = (T, Range<usize>);

/// One step of [`members_loosely_along`]: the member `key`, whose value starts at `start`.
#[cfg(feature = "engine")]
fn step_along<T, F>(
    bytes: &[u8],
    key: &[u8],
    start: usize,
    path: &[&[u8]],
    read: &mut F,
    found: &mut Option<Read<T>>,
) -> Result<Option<usize>, ScanError>
where
    F: FnMut(usize) -> Result<(T, usize), ScanError>,
{
    let Some((&step, rest)) = path.split_first() else {
        return Ok(None);
    };
    if key != step {
        return Ok(None);
    }
    let Some(&next) = rest.first() else {
        let (value, end) = read(start)?;
        *found = Some((value, start..end));
        return Ok(Some(end));
    };
    if bytes.get(start) != Some(&b'{') {
        return Ok(None);
    }
    // The next step is asked for by name, so that a second one is refused as a duplicate.
    let (_, end) = object_members::<1, false>(bytes, start, [next], |key, start| {
        step_along(bytes, key, start, rest, read, found)
    })?;
    Ok(Some(end))
}

/// What [`members_loosely_nested`] finds: the outer object's spans, and the inner ones.
#[cfg(feature = "engine")]
pub(crate) type NestedMembers<const N: usize, const M: usize> = (Spans<N>, Option<Spans<M>>);

/// The span of each member asked for, in the order asked.
pub(crate) type Spans<const N: usize> = [Option<Range<usize>>; N];

/// The index of the `{` that opens the text; the error a text of another kind gets otherwise.
fn object_start(bytes: &[u8]) -> Result<usize, ScanError> {
    let i = skip_ws(bytes, 0);
    match bytes.get(i) {
        Some(b'{') => Ok(i),
        Some(_) => {
            // A value of another kind is an invalid request; anything else is a syntax error.
            let end = skip_value(bytes, i)?;
            if skip_ws(bytes, end) == bytes.len() {
                Err(ScanError::NotAnObject)
            } else {
                Err(ScanError::Syntax)
            }
        }
        None => Err(ScanError::Syntax),
    }
}

/// `i` is at `{`: the span of the member named by each of `keys`, and the index just past the
/// closing `}`. `descend` is offered each member (its key, where its value starts) before the
/// value is skipped, and may walk the value itself, returning where it ends.
fn object_members<const N: usize, const STRICT: bool>(
    bytes: &[u8],
    i: usize,
    keys: [&[u8]; N],
    mut descend: impl FnMut(&[u8], usize) -> Result<Option<usize>, ScanError>,
) -> Result<(Spans<N>, usize), ScanError> {
    let mut found: Spans<N> = std::array::from_fn(|_| None);
    let mut i = skip_ws(bytes, i + 1);
    if bytes.get(i) == Some(&b'}') {
        return Ok((found, i + 1));
    }
    loop {
        if bytes.get(i) != Some(&b'"') {
            return Err(ScanError::Syntax);
        }
        let (key_end, escaped) = skip_key::<STRICT>(bytes, i)?;
        let key = &bytes[i + 1..key_end - 1];
        i = skip_ws(bytes, key_end);
        if bytes.get(i) != Some(&b':') {
            return Err(ScanError::Syntax);
        }
        let start = skip_ws(bytes, i + 1);
        let end = match descend(key, start)? {
            Some(end) => end,
            None if STRICT => skip_value(bytes, start)?,
            None => skip_value_loosely(bytes, start)?,
        };
        if let Some(slot) = keys.iter().position(|k| *k == key) {
            if found[slot].is_some() {
                return Err(ScanError::DuplicateMember);
            }
            found[slot] = Some(start..end);
        } else if escaped {
            // An escaped key could spell one of ours: let the exact decoder judge.
            return Err(ScanError::NeedsDecoder);
        }
        i = skip_ws(bytes, end);
        match bytes.get(i) {
            Some(b',') => i = skip_ws(bytes, i + 1),
            Some(b'}') => return Ok((found, i + 1)),
            _ => return Err(ScanError::Syntax),
        }
    }
}

/// `i` is at a key's opening quote: the index just past its closing quote, and whether the key
/// holds an escape (checked strictly, as [`skip_string_strictly`] does, when `STRICT`).
#[inline(always)]
fn skip_key<const STRICT: bool>(bytes: &[u8], i: usize) -> Result<(usize, bool), ScanError> {
    match plain_string_end::<STRICT>(bytes, i) {
        Some(end) => Ok((end, false)),
        None => skip_unusual_key::<STRICT>(bytes, i),
    }
}

#[cold]
#[inline(never)]
fn skip_unusual_key<const STRICT: bool>(
    bytes: &[u8],
    i: usize,
) -> Result<(usize, bool), ScanError> {
    let end = if STRICT {
        skip_string_strictly(bytes, i)?
    } else {
        skip_string(bytes, i)?
    };
    Ok((end, bytes[i + 1..end].contains(&b'\\')))
}

/// `i` is at an opening quote: the index just past the closing one, if nothing before it is an
/// escape (nor, when `STRICT`, a control character or a non-ASCII byte); `None` otherwise.
#[inline(always)]
fn plain_string_end<const STRICT: bool>(bytes: &[u8], i: usize) -> Option<usize> {
    let start = i + 1;
    let rest = bytes.get(start..)?;
    let offset = plain_prefix::<STRICT>(rest)?;
    (rest[offset] == b'"').then_some(start + offset + 1)
}

/// The offset of the first byte of `text` that ends or complicates a plain string: `"`, `\`,
/// and when `STRICT` a control character or a non-ASCII byte. Eight bytes at a time: keys and
/// short strings end within a word or two, before memchr's setup for them would be done.
#[inline(always)]
fn plain_prefix<const STRICT: bool>(text: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGHS: u64 = ONES << 7;
    // The high bit of each zero byte of `v` (exact up to the first one, which is all we read).
    let zeros = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let (words, tail) = text.as_chunks::<8>();
    for (n, word) in words.iter().enumerate() {
        let word = u64::from_le_bytes(*word);
        let mut hits =
            zeros(word ^ (ONES * u64::from(b'"'))) | zeros(word ^ (ONES * u64::from(b'\\')));
        if STRICT {
            // Below 0x20 borrows into the high bit; 0x80 and above have it already.
            hits |= (word.wrapping_sub(ONES * 0x20) | word) & HIGHS;
        }
        if hits != 0 {
            return Some(n * 8 + hits.trailing_zeros() as usize / 8);
        }
    }
    let stops = |&b: &u8| b == b'"' || b == b'\\' || (STRICT && !(0x20..0x80).contains(&b));
    tail.iter()
        .position(stops)
        .map(|offset| words.len() * 8 + offset)
}

fn end_of_text(bytes: &[u8], i: usize) -> Result<(), ScanError> {
    if skip_ws(bytes, i) == bytes.len() {
        Ok(())
    } else {
        Err(ScanError::Syntax)
    }
}

/// Scans a JSON array: the span of each element.
pub(crate) fn array(bytes: &[u8]) -> Result<Vec<Range<usize>>, ScanError> {
    let mut i = skip_ws(bytes, 0);
    if bytes.get(i) != Some(&b'[') {
        return Err(ScanError::Syntax);
    }
    let mut elements = Vec::new();
    i = skip_ws(bytes, i + 1);
    if bytes.get(i) == Some(&b']') {
        return end_of_text(bytes, i + 1).map(|()| elements);
    }
    loop {
        let end = skip_value(bytes, i)?;
        elements.push(i..end);
        i = skip_ws(bytes, end);
        match bytes.get(i) {
            Some(b',') => i = skip_ws(bytes, i + 1),
            Some(b']') => return end_of_text(bytes, i + 1).map(|()| elements),
            _ => return Err(ScanError::Syntax),
        }
    }
}

/// Scans the first element of a JSON array only: its span, and the span of everything after its
/// comma up to the closing bracket (trimmed; `None` when it is the only element). The rest is
/// not scanned: for params whose first element is small and whose second is large and decoded
/// by whoever wants it.
pub(crate) fn head_and_rest(
    bytes: &[u8],
) -> Result<(Range<usize>, Option<Range<usize>>), ScanError> {
    let mut i = skip_ws(bytes, 0);
    if bytes.get(i) != Some(&b'[') {
        return Err(ScanError::Syntax);
    }
    i = skip_ws(bytes, i + 1);
    let head = i..skip_value(bytes, i)?;
    i = skip_ws(bytes, head.end);
    match bytes.get(i) {
        Some(b']') => end_of_text(bytes, i + 1).map(|()| (head, None)),
        Some(b',') => {
            let start = skip_ws(bytes, i + 1);
            let close = bytes.trim_ascii_end().len();
            if close == 0 || bytes[close - 1] != b']' {
                return Err(ScanError::Syntax);
            }
            let end = bytes[..close - 1].trim_ascii_end().len();
            if start >= end {
                return Err(ScanError::Syntax);
            }
            Ok((head, Some(start..end)))
        }
        _ => Err(ScanError::Syntax),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Spans<'a> = (Option<&'a str>, Option<&'a str>, Option<&'a str>);

    fn spans(text: &str) -> Result<Spans<'_>, ScanError> {
        let m = object(text.as_bytes())?;
        let get = |r: Option<Range<usize>>| r.map(|r| &text[r]);
        Ok((get(m.method), get(m.id), get(m.params)))
    }

    #[test]
    fn finds_members_with_nested_and_escaped_values() {
        let text = r#" { "jsonrpc" : "2.0", "params" : [ {"a":"x\"]}"}, [1, -2.5e3], null ], "id": "q\\", "method":"m" } "#;
        assert_eq!(
            spans(text),
            Ok((
                Some(r#""m""#),
                Some(r#""q\\""#),
                Some(r#"[ {"a":"x\"]}"}, [1, -2.5e3], null ]"#)
            ))
        );
    }

    #[test]
    fn rejects_broken_envelopes() {
        for text in [
            "",
            "{",
            r#"{"method":"m""#,
            r#"{"method" "m"}"#,
            r#"{"method":"m",}"#,
            r#"{"method":"m"} x"#,
            r#"{"params":[1}"#,
            r#"{"params":"unterminated}"#,
            r#"{"id":tru}"#,
            // The envelope's own strings and numbers are held to JSON exactly (found by fuzzing:
            // an id with a raw control character was echoed into an invalid response).
            "{\"id\":\"a\u{5}b\"}",
            "{\"j\u{1}sonrpc\":\"2.0\"}",
            r#"{"method":"a\qb"}"#,
            r#"{"id":1-2}"#,
            r#"{"id":01}"#,
            r#"{"id":1.}"#,
            r#"{"id":1e}"#,
            r#"{"id":-}"#,
            r#"{"id":.5}"#,
        ] {
            assert_eq!(object(text.as_bytes()), Err(ScanError::Syntax), "{text:?}");
        }
        for text in [&b"{\"id\":\"\xff\"}"[..], b"{\"method\":\"\xc3\"}"] {
            assert_eq!(object(text), Err(ScanError::Syntax), "{text:?}");
        }
    }

    #[test]
    fn reads_every_json_number_and_escape_at_the_top_level() {
        for id in [
            "0",
            "-0",
            "12",
            "-3.25",
            "1e9",
            "2E-7",
            "6.02e+23",
            r#""a\"b\u00e9""#,
        ] {
            let text = format!(r#"{{"id":{id},"method":"m"}}"#);
            let members = object(text.as_bytes()).expect("valid");
            assert_eq!(members.id.map(|span| &text[span]), Some(id), "{text}");
        }
        // Nested values stay the upstream's to judge.
        assert!(object("{\"params\":[\"\u{1}\", 1-2]}".as_bytes()).is_ok());
    }

    #[test]
    fn other_values_are_not_objects_and_duplicates_are_refused() {
        assert_eq!(object(b" 12 "), Err(ScanError::NotAnObject));
        assert_eq!(object(br#""x""#), Err(ScanError::NotAnObject));
        assert_eq!(
            object(br#"{"method":"a","method":"b"}"#),
            Err(ScanError::DuplicateMember)
        );
    }

    #[test]
    fn nesting_of_any_depth_is_scanned() {
        // An array whose one element is nested `depth` deep.
        let nested = |depth: usize| format!("[{}{}]", "[".repeat(depth), "]".repeat(depth));
        for depth in [1, INLINE_DEPTH, INLINE_DEPTH + 1, 1_000] {
            assert_eq!(array(nested(depth).as_bytes()).map(|e| e.len()), Ok(1));
        }
        let mismatched = format!("[{}}}]", "[".repeat(INLINE_DEPTH + 1));
        assert_eq!(array(mismatched.as_bytes()), Err(ScanError::Syntax));
        assert_eq!(array(b"[[}]"), Err(ScanError::Syntax));
    }

    #[test]
    fn loose_members_delimit_values_without_judging_them() {
        let text = r#"{"a": tru, "b" : "\u00zz", "n":-1e, "o":{"x":[1]}, "t":"0x1" }"#;
        let [t, o] = members_loosely(text.as_bytes(), [b"t", b"o"]).expect("delimited");
        assert_eq!(t.map(|r| &text[r]), Some(r#""0x1""#));
        assert_eq!(o.map(|r| &text[r]), Some(r#"{"x":[1]}"#));
        assert!(
            members(text.as_bytes(), [b"t"]).is_err(),
            "the strict scan judges them"
        );
        for broken in [
            &br#"{"a":}"#[..],
            br#"{"a":1"#,
            br#"{"a":[}"#,
            br#"{"t":1,"t":2}"#,
        ] {
            assert!(members_loosely(broken, [b"t"]).is_err(), "{broken:?}");
        }
    }

    #[test]
    fn keys_with_escapes_or_unusual_bytes_take_the_careful_path() {
        // An escaped key could spell a wanted one: neither scan guesses.
        let escaped = br#"{"jsonrpc":"2.0","meth\u006fd":"x"}"#;
        assert_eq!(object(escaped), Err(ScanError::NeedsDecoder));
        assert_eq!(
            members_loosely(escaped, [b"method"]),
            Err(ScanError::NeedsDecoder)
        );
        // An escaped quote does not end a key: read to its end, it is an escaped key still.
        assert_eq!(
            members_loosely(br#"{"a\"b":1,"a":2}"#, [b"a"]),
            Err(ScanError::NeedsDecoder)
        );
        // Non-ASCII keys are valid JSON; raw control characters are not, strictly.
        assert!(object("{\"é\":1,\"method\":\"m\"}".as_bytes()).is_ok());
        assert_eq!(object(b"{\"a\x01\":1}"), Err(ScanError::Syntax));
        assert!(members_loosely(b"{\"a\x01\":1}", [b"b"]).is_ok());
    }

    #[test]
    #[cfg(feature = "engine")]
    fn a_nested_member_is_found_in_the_same_pass() {
        let text = br#"{"jsonrpc":"2.0","id":7,"result":{"payloadStatus":{"payloadId":"0x02"},"payloadId":"0x01"}}"#;
        let ([id, result], inner) =
            members_loosely_nested(text, [b"id", b"result"], b"result", [b"payloadId"])
                .expect("scanned");
        let span = |r: Option<Range<usize>>| r.map(|r| &text[r]);
        assert_eq!(span(id), Some(&b"7"[..]));
        assert!(span(result).is_some_and(|r| r.starts_with(b"{") && r.ends_with(b"}")));
        assert_eq!(inner.map(|[p]| span(p)), Some(Some(&br#""0x01""#[..])));
        // Not an object, absent, or broken inside: no inner spans, or the scan's error.
        for (text, expected) in [
            (&br#"{"result":null}"#[..], Ok(None)),
            (br#"{"id":1}"#, Ok(None)),
            (
                br#"{"result":{"payloadId":1,"payloadId":2}}"#,
                Err(ScanError::DuplicateMember),
            ),
            (br#"{"result":{"payloadId" 1}}"#, Err(ScanError::Syntax)),
            (br#"{"result":{"a":1}} x"#, Err(ScanError::Syntax)),
        ] {
            let scanned = members_loosely_nested(text, [b"id"], b"result", [b"payloadId"]);
            assert_eq!(
                scanned.map(|(_, inner)| inner.map(|_| ())),
                expected,
                "{text:?}"
            );
        }
    }

    #[test]
    #[cfg(feature = "engine")]
    fn a_value_along_a_path_is_read_in_the_same_pass() {
        let path: &[&[u8]] = &[b"result", b"payload", b"list"];
        // `read` delimits a flat array itself, and counts its elements.
        let read = |text: &'static [u8]| {
            move |at: usize| {
                let end = at + memchr::memchr(b']', &text[at..]).ok_or(ScanError::Syntax)? + 1;
                Ok((text[at..end].split(|&b| b == b',').count(), end))
            }
        };
        let text = br#"{"id":1,"result":{"list":[9],"payload":{"a":[1],"list":[1,2,3]}},"x":2}"#;
        let ([id], found) =
            members_loosely_along(text, [b"id"], path, read(text)).expect("scanned");
        assert_eq!(id.map(|r| &text[r]), Some(&b"1"[..]));
        let (count, span) = found.expect("found along the path");
        assert_eq!((count, &text[span]), (3, &b"[1,2,3]"[..]));
        // Not there, not an object on the way, a duplicate step, or broken after it.
        for (text, expected) in [
            (&br#"{"result":{"payload":{"a":1}}}"#[..], Ok(false)),
            (br#"{"result":{"payload":[{"list":[1]}]}}"#, Ok(false)),
            (br#"{"result":null}"#, Ok(false)),
            (
                br#"{"result":{"payload":{"list":[1]},"payload":{}}}"#,
                Err(ScanError::DuplicateMember),
            ),
            (
                br#"{"result":{"payload":{"list":[1],"list":[2]}}}"#,
                Err(ScanError::DuplicateMember),
            ),
            (
                br#"{"result":{"payload":{"list":[1] "b":2}}}"#,
                Err(ScanError::Syntax),
            ),
            (
                br#"{"result":{"payload":{"list":[1]}}} x"#,
                Err(ScanError::Syntax),
            ),
        ] {
            let scanned = members_loosely_along(text, [b"id"], path, read(text));
            assert_eq!(
                scanned.map(|(_, found)| found.is_some()),
                expected,
                "{text:?}"
            );
        }
    }

    #[test]
    fn head_and_rest_scans_only_the_first_element() {
        let text = r#" [ {"a":[1,"]"]} , {"big":"x"}, 3 ] "#;
        let (head, rest) = head_and_rest(text.as_bytes()).expect("array");
        assert_eq!(&text[head], r#"{"a":[1,"]"]}"#);
        assert_eq!(rest.map(|r| &text[r]), Some(r#"{"big":"x"}, 3"#));
        let (head, rest) = head_and_rest(b"[1]").expect("one element");
        assert_eq!((head, rest), (1..2, None));
        for broken in [&b"[]"[..], b"[1,]", b"[1, 2", b"{}", b"[1] x", b"[{]"] {
            assert!(head_and_rest(broken).is_err(), "{broken:?}");
        }
    }

    #[test]
    fn arrays_split_into_elements() {
        let text = r#"[ {"id":1}, 2 ,"three", [4] ]"#;
        let parts: Vec<&str> = array(text.as_bytes())
            .expect("array")
            .into_iter()
            .map(|r| &text[r])
            .collect();
        assert_eq!(parts, [r#"{"id":1}"#, "2", r#""three""#, "[4]"]);
        assert_eq!(array(b"[1,"), Err(ScanError::Syntax));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use crate::jsonrpc::properties::json_value;
    use proptest::prelude::*;
    use serde_json::Value;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Of any array serde writes, the head is its first element and the rest (of a
        /// two-element array) its second, exactly.
        #[test]
        fn head_and_rest_agree_with_serde(first in json_value(), second in prop::option::of(json_value()), pretty: bool) {
            let array = Value::Array(std::iter::once(first.clone()).chain(second.clone()).collect());
            let text = if pretty { serde_json::to_vec_pretty(&array) } else { serde_json::to_vec(&array) }.unwrap_or_default();
            let Ok((head, rest)) = head_and_rest(&text) else {
                return Err(TestCaseError::fail("a valid array was refused"));
            };
            // Both sides through serde's float parsing, which does not round-trip exactly.
            let read = |span: Range<usize>| serde_json::from_slice::<Value>(&text[span]).ok();
            let again = |v: &Value| serde_json::from_slice::<Value>(&serde_json::to_vec(v).unwrap_or_default()).ok();
            prop_assert_eq!(read(head), again(&first));
            prop_assert_eq!(rest.and_then(read), second.as_ref().and_then(again));
        }

        /// The word-at-a-time search stops where a byte-at-a-time one does.
        #[test]
        fn plain_prefix_agrees_with_a_byte_loop(text in prop::collection::vec(prop_oneof![any::<u8>(), Just(b'"'), Just(b'a')], 0..40)) {
            let loose = text.iter().position(|&b| b == b'"' || b == b'\\');
            let strict = text.iter().position(|&b| b == b'"' || b == b'\\' || !(0x20..0x80).contains(&b));
            prop_assert_eq!(plain_prefix::<false>(&text), loose);
            prop_assert_eq!(plain_prefix::<true>(&text), strict);
        }

        /// Any bytes: an answer, never a panic; spans always lie inside the text.
        #[test]
        fn head_and_rest_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..128)) {
            if let Ok((head, rest)) = head_and_rest(&bytes) {
                prop_assert!(head.end <= bytes.len());
                prop_assert!(rest.is_none_or(|r| r.start < r.end && r.end <= bytes.len()));
            }
        }
    }
}
