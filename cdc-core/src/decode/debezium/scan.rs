//! A strict, allocation-free JSON scanner for the parts of an envelope the single pass reads
//! itself: the top-level fields and the `source` block. serde_json spends most of an
//! envelope's time there building and matching owned keys, parsing fields nobody reads and
//! going through `Deserialize` for a handful of integers; this scanner compares key bytes in
//! place, skips unread values in one byte loop, and hands only row objects to serde.
//!
//! It accepts exactly what JSON allows (RFC 8259 numbers, escapes, no control characters in
//! strings, bounded nesting); anything it does not read plainly (a key or a read string with
//! escapes, a float where an integer is read) is `None`, and the caller falls back to
//! serde_json, which then decodes or reports the record. Input is `&str`: UTF-8 was checked
//! once for the whole record.

/// Nesting deeper than this is left to serde_json (it has the same limit).
const MAX_DEPTH: usize = 128;

/// The bytes that end a string's plain run: `"`, `\` and the control characters.
static ENDS_PLAIN_RUN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// The keys of an object in the order the previous record of the same shape had them, each
/// with what its reader made of it. A record laid out like the one before has each key
/// compared as one run of bytes (`"name":`) instead of scanned and matched by name.
#[derive(Debug, Clone)]
pub(crate) struct KeyOrder<T> {
    keys: Vec<OrderedKey<T>>,
}

#[derive(Debug, Clone)]
struct OrderedKey<T> {
    /// `"name":`.
    quoted: Box<[u8]>,
    /// What the name means to the reader.
    meaning: T,
    /// The text of the value the reader last skipped under this key, while it repeats.
    skipped: Vec<u8>,
    /// The value changed between records (a timestamp): skipped without comparing.
    varies: bool,
}

impl<T> Default for KeyOrder<T> {
    fn default() -> Self {
        KeyOrder { keys: Vec::new() }
    }
}

/// `hay.starts_with(needle)` for the short needles keys are, in two overlapping word loads
/// instead of a call to `memcmp` (which was a tenth of a schemaless decode).
#[inline]
fn starts_with_short(hay: &[u8], needle: &[u8]) -> bool {
    let n = needle.len();
    let Some(hay) = hay.get(..n) else {
        return false;
    };
    fn word<const W: usize>(b: &[u8], at: usize) -> [u8; W] {
        b[at..at + W].try_into().expect("W bytes")
    }
    match n {
        2..=3 => word::<2>(hay, 0) == word::<2>(needle, 0) && hay[n - 1] == needle[n - 1],
        4..=7 => {
            word::<4>(hay, 0) == word::<4>(needle, 0)
                && word::<4>(hay, n - 4) == word::<4>(needle, n - 4)
        }
        8..=16 => {
            word::<8>(hay, 0) == word::<8>(needle, 0)
                && word::<8>(hay, n - 8) == word::<8>(needle, n - 8)
        }
        _ => hay == needle,
    }
}

/// A cursor over JSON text.
pub(crate) struct Scan<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Scan<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Scan { text, pos: 0 }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn ws(&mut self) {
        let b = self.bytes();
        while matches!(b.get(self.pos), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.pos += 1;
        }
    }

    /// The next byte after whitespace, not consumed.
    pub(crate) fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.bytes().get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    fn eat_literal(&mut self, literal: &[u8]) -> Option<()> {
        self.ws();
        let rest = self.bytes().get(self.pos..)?;
        rest.starts_with(literal).then(|| self.pos += literal.len())
    }

    /// `true` or `false`; `None` for anything else.
    pub(crate) fn bool(&mut self) -> Option<bool> {
        match self.peek()? {
            b't' => self.eat_literal(b"true").map(|()| true),
            _ => self.eat_literal(b"false").map(|()| false),
        }
    }

    /// Whether only whitespace is left.
    pub(crate) fn at_end(&mut self) -> bool {
        self.ws();
        self.pos == self.text.len()
    }

    /// Consumes `null` if it is next.
    pub(crate) fn null(&mut self) -> bool {
        self.eat_literal(b"null").is_some()
    }

    /// The offset from `self.pos` of the first byte that ends a string's plain run: a quote,
    /// a backslash or a control character (invalid in JSON strings); `None` at the end.
    #[inline]
    fn plain_run(&self) -> Option<usize> {
        // One table lookup a byte: Debezium's strings are mostly a few bytes, too short for
        // memchr's setup.
        let rest = &self.bytes()[self.pos..];
        rest.iter().position(|&b| ENDS_PLAIN_RUN[usize::from(b)])
    }

    /// A string without escapes: its text. `None` for anything else.
    pub(crate) fn plain_string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let end = self.plain_run()?;
        if self.bytes()[self.pos + end] != b'"' {
            return None;
        }
        let text = &self.text[self.pos..self.pos + end];
        self.pos += end + 1;
        Some(text)
    }

    fn skip_string(&mut self) -> Option<()> {
        self.eat(b'"')?;
        loop {
            self.pos += self.plain_run()?;
            let rest = &self.bytes()[self.pos..];
            let len = match rest[0] {
                b'"' => {
                    self.pos += 1;
                    return Some(());
                }
                b'\\' => match *rest.get(1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => 2,
                    b'u' if rest.get(2..6)?.iter().all(u8::is_ascii_hexdigit) => 6,
                    _ => return None,
                },
                _ => return None,
            };
            self.pos += len;
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        let b = self.bytes();
        while b.get(self.pos).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
        }
        self.pos - start
    }

    /// A number's text, checked against JSON's grammar.
    fn number(&mut self) -> Option<&'a str> {
        self.ws();
        let start = self.pos;
        let b = self.bytes();
        if b.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        match b.get(self.pos)? {
            b'0' => self.pos += 1,
            b'1'..=b'9' => _ = self.digits(),
            _ => return None,
        }
        if b.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            (self.digits() > 0).then_some(())?;
        }
        if matches!(b.get(self.pos), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(b.get(self.pos), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            (self.digits() > 0).then_some(())?;
        }
        Some(&self.text[start..self.pos])
    }

    /// An integer or `null`; `None` for anything else (a float, out of range).
    pub(crate) fn optional_int<T: TryFrom<i128>>(&mut self) -> Option<Option<T>> {
        if self.null() {
            return Some(None);
        }
        self.int().map(Some)
    }

    /// An integer of JSON's grammar that fits `T`, read in one pass; `None` for anything else
    /// (a float, out of range, not a number), with the cursor left where it was.
    pub(crate) fn int<T: TryFrom<i128>>(&mut self) -> Option<T> {
        self.ws();
        let b = self.bytes();
        let negative = b.get(self.pos) == Some(&b'-');
        let mut at = self.pos + usize::from(negative);
        let mut magnitude: u64 = 0;
        let first = at;
        while let Some(d) = b.get(at).filter(|d| d.is_ascii_digit()) {
            magnitude = magnitude
                .checked_mul(10)?
                .checked_add(u64::from(d - b'0'))?;
            at += 1;
        }
        let digits = at - first;
        let leading_zero = digits > 1 && b[first] == b'0';
        let fraction = matches!(b.get(at), Some(b'.' | b'e' | b'E'));
        // serde_json reads `-0` as a float: leave it to serde.
        let negative_zero = negative && magnitude == 0;
        if digits == 0 || leading_zero || fraction || negative_zero {
            return None;
        }
        let signed = if negative {
            -i128::from(magnitude)
        } else {
            i128::from(magnitude)
        };
        let v = T::try_from(signed).ok()?;
        self.pos = at;
        Some(v)
    }

    /// A string without escapes or `null`.
    pub(crate) fn optional_plain_string(&mut self) -> Option<Option<&'a str>> {
        if self.null() {
            return Some(None);
        }
        self.plain_string().map(Some)
    }

    /// Skips one value; its text.
    pub(crate) fn value(&mut self) -> Option<&'a str> {
        self.ws();
        let start = self.pos;
        self.skip_value(0)?;
        Some(&self.text[start..self.pos])
    }

    fn skip_value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.skip_string(),
            b'{' if depth < MAX_DEPTH => {
                let mut first = true;
                self.open_object()?;
                while self.next_key(&mut first, true)?.is_some() {
                    self.skip_value(depth + 1)?;
                }
                Some(())
            }
            b'[' if depth < MAX_DEPTH => {
                self.pos += 1;
                if self.peek()? == b']' {
                    self.pos += 1;
                    return Some(());
                }
                loop {
                    self.skip_value(depth + 1)?;
                    match self.peek()? {
                        b',' => self.pos += 1,
                        b']' => break,
                        _ => return None,
                    }
                }
                self.pos += 1;
                Some(())
            }
            b't' => self.eat_literal(b"true"),
            b'f' => self.eat_literal(b"false"),
            b'n' => self.eat_literal(b"null"),
            _ => self.number().map(drop),
        }
    }

    /// Opens an object; its keys follow from [`Self::next_key`].
    pub(crate) fn open_object(&mut self) -> Option<()> {
        self.eat(b'{')
    }

    /// The next key of the open object and its colon, `Some(None)` at its end. A key with
    /// escapes is `None` unless `any_key` (the caller only skips its value then, and gets "").
    pub(crate) fn next_key(&mut self, first: &mut bool, any_key: bool) -> Option<Option<&'a str>> {
        if self.peek()? == b'}' {
            self.pos += 1;
            return Some(None);
        }
        if !std::mem::take(first) {
            self.eat(b',')?;
        }
        let key = match any_key && self.peek()? == b'"' {
            true => {
                let start = self.pos;
                self.skip_string()?;
                &self.text[start..start]
            }
            false => self.plain_string()?,
        };
        self.eat(b':')?;
        Some(Some(key))
    }

    /// [`Self::next_key`] (without `any_key`) through `order`: the key the previous record had
    /// at `index` is tried first; a key it did not predict is scanned, given its meaning by
    /// `classify`, and replaces the rest of the order. The key's meaning.
    pub(crate) fn next_key_in<T: Copy>(
        &mut self,
        order: &mut KeyOrder<T>,
        index: &mut usize,
        classify: impl FnOnce(&'a str) -> T,
    ) -> Option<Option<T>> {
        if let Some(known) = order.keys.get(*index) {
            // The separator and `"name":` right there, as Debezium writes them (no
            // whitespace): the same tokens next_key would read.
            let separator = usize::from(*index > 0);
            let at = self.pos + separator;
            let comma = separator == 0 || self.bytes().get(self.pos) == Some(&b',');
            if comma && starts_with_short(self.bytes().get(at..)?, &known.quoted) {
                self.pos = at + known.quoted.len();
                *index += 1;
                return Some(Some(known.meaning));
            }
        }
        let Some(key) = self.next_key(&mut (*index == 0), false)? else {
            return Some(None);
        };
        let meaning = classify(key);
        order.keys.truncate(*index);
        order.keys.push(OrderedKey {
            quoted: format!("\"{key}\":").into_bytes().into(),
            meaning,
            skipped: Vec::new(),
            varies: false,
        });
        *index += 1;
        Some(Some(meaning))
    }

    /// Skips the value of the key [`Self::next_key_in`] just read (`index` after it), in one
    /// comparison when it is the value the previous record had there: Debezium repeats most
    /// skipped values (the connector's version and name, nulls).
    pub(crate) fn skip_value_in<T>(&mut self, order: &mut KeyOrder<T>, index: usize) -> Option<()> {
        let key = order.keys.get_mut(index.checked_sub(1)?)?;
        if key.varies {
            return self.value().map(drop);
        }
        let last = &mut key.skipped;
        let rest = &self.bytes()[self.pos..];
        // A whole value followed by what ends one: the same value, whatever came before it.
        if !last.is_empty()
            && starts_with_short(rest, last)
            && matches!(rest.get(last.len()), Some(b',' | b'}'))
        {
            self.pos += last.len();
            return Some(());
        }
        let text = self.value()?;
        key.varies = !last.is_empty();
        last.clear();
        if !key.varies {
            last.extend_from_slice(text.as_bytes());
        }
        Some(())
    }

    /// Where the cursor is, to come back to with [`Self::reset`].
    pub(crate) fn mark(&self) -> usize {
        self.pos
    }

    /// Back to a [`Self::mark`].
    pub(crate) fn reset(&mut self, mark: usize) {
        self.pos = mark;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skips(text: &str) -> bool {
        let mut s = Scan::new(text);
        s.value().is_some() && s.at_end()
    }

    #[test]
    fn skips_exactly_what_json_allows() {
        let values = [
            r#"{"a":[1,-2.5e+3,0,true,false,null,"x\"\\\/\b\f\n\r\t\u00e9"],"b":{}}"#,
            " [ ] ",
            r#"{ "a" : { "b" : [ { } ] } }"#,
            "-0.0E-1",
            r#""ü""#,
        ];
        let not_values = [
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "+1",
            "tru",
            "nul",
            "{,}",
            r#"{"a":1,}"#,
            "[1,]",
            r#"{"a" 1}"#,
            r#"{"a":1 "b":2}"#,
            "[1 2]",
            r#""\x""#,
            r#""\u12g4""#,
            "\"a\u{1}\"",
            "\"unterminated",
            "{",
            "[",
        ];
        for v in values {
            assert!(skips(v), "{v}");
            assert!(serde_json::from_str::<serde_json::Value>(v).is_ok(), "{v}");
        }
        for v in not_values {
            assert!(!skips(v), "{v}");
            assert!(serde_json::from_str::<serde_json::Value>(v).is_err(), "{v}");
        }
    }

    #[test]
    fn short_prefixes_compare_like_starts_with() {
        let hay = b"\"connector\":\"postgresql\",\"name\":\"x\"";
        for n in 0..=hay.len() {
            for flip in 0..n {
                let mut needle = hay[..n].to_vec();
                assert!(starts_with_short(hay, &needle));
                needle[flip] ^= 1;
                assert!(!starts_with_short(hay, &needle), "{n} {flip}");
            }
            assert!(!starts_with_short(&hay[..n.saturating_sub(1)], &hay[..n]) || n == 0);
        }
    }

    #[test]
    fn deep_nesting_is_left_to_serde() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(!skips(&deep));
    }

    #[test]
    fn reads_plain_strings_and_integers_only() {
        let mut s = Scan::new(r#"{"a":"x","b\"":1,"c":18446744073709551615,"d":1.5}"#);
        let mut first = true;
        s.open_object().unwrap();
        assert_eq!(s.next_key(&mut first, false), Some(Some("a")));
        assert_eq!(s.optional_plain_string(), Some(Some("x")));
        assert_eq!(s.next_key(&mut first, false), None, "escaped key");
        let mut s = Scan::new(r#"18446744073709551615 1.5 null "a\"b""#);
        assert_eq!(s.optional_int::<u64>(), Some(Some(u64::MAX)));
        assert_eq!(s.optional_int::<i64>(), None, "float");
        let mut s = Scan::new(r#"null "a\"b""#);
        assert_eq!(s.optional_int::<i64>(), Some(None));
        assert_eq!(s.optional_plain_string(), None, "escaped string");
    }
}
