//! OData query options and links: `$top`, `$skiptoken`, `$deltatoken`,
//! `$filter=groupName eq '...'`, and the `@odata.nextLink` / `@odata.deltaLink` that carry them.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::handler::errors::HandlerError;
use crate::store::ListQuery;

/// Characters left as they are in a query value: RFC 3986 unreserved, plus `'` (OData quotes).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~').remove(b'\'');

/// Characters escaped in a user id inside `@odata.context` (`users('a%40b')`, as Graph prints).
const KEY_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// The query options of a request, in order, percent-decoded.
#[derive(Debug, Default, Clone)]
pub(crate) struct QueryOptions {
    pairs: Vec<(String, String)>,
}

impl QueryOptions {
    /// Parses the part after `?` (`+` decodes to a space, as forms do).
    pub(crate) fn parse(query: &str) -> Self {
        Self { pairs: form_urlencoded::parse(query.as_bytes()).into_owned().collect() }
    }

    /// The value of `name` (the `$` options match in any case, as OData allows).
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Refuses any option not in `allowed`.
    ///
    /// # Errors
    /// [`HandlerError::BadRequest`] naming the first unknown option.
    pub(crate) fn only(&self, allowed: &[&str]) -> Result<(), HandlerError> {
        match self.pairs.iter().find(|(k, _)| !allowed.iter().any(|a| a.eq_ignore_ascii_case(k))) {
            None => Ok(()),
            Some((k, _)) => Err(HandlerError::BadRequest {
                field: format!("query option {k}"),
                problem: format!("is not supported here; supported: {}", allowed.join(", ")),
            }),
        }
    }

    /// `$top`, checked into `1..=1000`; `default` when absent.
    ///
    /// # Errors
    /// [`HandlerError::BadRequest`] naming `$top`.
    pub(crate) fn top(&self, default: usize) -> Result<usize, HandlerError> {
        match self.get("$top") {
            None => Ok(default),
            Some(text) => {
                text.trim().parse::<usize>().ok().filter(|n| (1..=ListQuery::MAX_LIMIT).contains(n)).ok_or_else(|| {
                    HandlerError::BadRequest {
                        field: "$top".into(),
                        problem: format!("must be a whole number from 1 to {}, not {text:?}", ListQuery::MAX_LIMIT),
                    }
                })
            }
        }
    }

    /// The group of `$filter=groupName eq '<group>'` (`''` inside the quotes is one `'`).
    ///
    /// # Errors
    /// [`HandlerError::BadRequest`] for any other filter.
    pub(crate) fn group_filter(&self) -> Result<Option<String>, HandlerError> {
        let Some(filter) = self.get("$filter") else { return Ok(None) };
        parse_group_filter(filter).map(Some).ok_or_else(|| HandlerError::BadRequest {
            field: "$filter".into(),
            problem: format!("must be groupName eq '<group>', not {filter:?}"),
        })
    }
}

fn parse_group_filter(filter: &str) -> Option<String> {
    let (property, rest) = filter.trim().split_once(char::is_whitespace)?;
    let (op, rest) = rest.trim_start().split_once(char::is_whitespace)?;
    let rest = rest.trim();
    if !property.eq_ignore_ascii_case("groupName") || !op.eq_ignore_ascii_case("eq") {
        return None;
    }
    let inner = rest.strip_prefix('\'')?.strip_suffix('\'')?;
    // Inside an OData string a quote is written twice; a lone quote ends the string early.
    let unescaped = inner.replace("''", "'");
    if unescaped.matches('\'').count() * 2 != inner.matches('\'').count() {
        return None;
    }
    Some(unescaped)
}

/// Builds `base + path + ?k=v&...`, percent-encoding each value.
pub(crate) fn link(base: &str, path: &str, options: &[(&str, String)]) -> String {
    let mut out = format!("{base}{path}");
    for (i, (k, v)) in options.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(k);
        out.push('=');
        out.extend(utf8_percent_encode(v, QUERY_VALUE));
    }
    out
}

/// A `$filter` value for `group`, quoted and escaped as OData strings are.
pub(crate) fn group_filter_value(group: &str) -> String {
    format!("groupName eq '{}'", group.replace('\'', "''"))
}

/// `$metadata#users('<user>')/notifications`, the user percent-encoded.
pub(crate) fn notifications_context(user: &str) -> String {
    format!("$metadata#users('{}')/notifications", utf8_percent_encode(user, KEY_SEGMENT))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn group_filter_parses_quotes_and_case() {
        assert_eq!(parse_group_filter("groupName eq 'TestGroup'").as_deref(), Some("TestGroup"));
        assert_eq!(parse_group_filter("  GROUPNAME  EQ  'it''s'  ").as_deref(), Some("it's"));
        assert_eq!(parse_group_filter("groupName eq 'a b'").as_deref(), Some("a b"));
        assert_eq!(parse_group_filter("groupName ne 'x'"), None);
        assert_eq!(parse_group_filter("priority eq 'High'"), None);
        assert_eq!(parse_group_filter("groupName eq 'a'b'"), None);
        assert_eq!(parse_group_filter("groupName eq x"), None);
    }

    #[test]
    fn query_options_decode_and_refuse_unknown_ones() {
        let q = QueryOptions::parse("$TOP=5&$filter=groupName%20eq%20'g'&$skiptoken=p9");
        assert_eq!(q.top(20).unwrap(), 5);
        assert_eq!(q.group_filter().unwrap().as_deref(), Some("g"));
        assert_eq!(q.get("$skiptoken"), Some("p9"));
        assert!(q.only(&["$top", "$filter", "$skiptoken"]).is_ok());
        assert!(q.only(&["$top"]).is_err());
        assert!(QueryOptions::parse("$top=0").top(20).is_err());
        assert!(QueryOptions::parse("$top=1001").top(20).is_err());
    }

    #[test]
    fn links_round_trip_through_query_parsing() {
        let filter = group_filter_value("a&b'c d");
        let url = link("http://h", "/me/notifications", &[("$top", "2".into()), ("$filter", filter)]);
        let query = url.split_once('?').unwrap().1;
        assert_eq!(QueryOptions::parse(query).group_filter().unwrap().as_deref(), Some("a&b'c d"));
        assert_eq!(notifications_context("a@b.com"), "$metadata#users('a%40b.com')/notifications");
    }
}
