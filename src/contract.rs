//! The Graph JSON contract: parsing a posted notification and validating it.
//!
//! [`parse_new_notification`] turns request body bytes into a [`NewNotification`];
//! [`validate`] checks one (however it was built) against the [`Limits`]. Both report a
//! [`ContractError`] that collects every problem found, each naming its field
//! (`payload.visualContent.title is required`), and that knows the HTTP status the seed's error
//! table gives it, so a request handler maps nothing itself.
//!
//! Order of checks, and the status each failure gets:
//! 1. not JSON at all (or nested 128 levels deep or more) → 400 `invalidRequest`;
//! 2. a JSON array → 400 `invalidRequest` (one notification per request);
//! 3. an `@odata.type` naming anything but the expected type → 401 `invalidDataType`;
//! 4. an unknown or repeated property, or a value of the wrong JSON type (an array where an
//!    object belongs, too) → 400 `invalidRequest`;
//! 5. rule violations (payload, lengths, expiration, …) → 400 `invalidPayload`;
//! 6. content larger than [`Limits::max_notification_bytes`] → 413 `payloadTooLarge`.
//!
//! Steps 1 to 3 stop at the first problem. Steps 4 to 6 collect every problem (at most 32 of
//! step 4), and the error takes the kind of the earliest step that found one.

use std::fmt;

use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::model::{FallbackPolicy, NewNotification, Payload, Platform, Platforms, Priority, VisualContent};

/// Bounds on what a notification may hold. Every engine enforces them on append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest notification, counted as the sum of the bytes of all its strings (host name,
    /// ids, group, raw content, titles and bodies). Default: 16 KiB.
    pub max_notification_bytes: usize,
    /// The largest `payload.rawContent`, in bytes. Default: 8 KiB.
    pub max_raw_content_bytes: usize,
    /// The longest `appNotificationId`, in bytes (it must also be non-empty). Default: 256.
    pub max_app_notification_id_bytes: usize,
    /// The longest `groupName`, in bytes. Default: 256.
    pub max_group_name_bytes: usize,
    /// The longest `targetHostName`, in bytes. Default: 256.
    pub max_target_host_name_bytes: usize,
    /// How far in the future `expirationDateTime` may lie; later values are rejected, not
    /// clamped. An absent expiration gets exactly this. Default: 30 days.
    pub max_expiration: SignedDuration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_notification_bytes: 16 * 1024,
            max_raw_content_bytes: 8 * 1024,
            max_app_notification_id_bytes: 256,
            max_group_name_bytes: 256,
            max_target_host_name_bytes: 256,
            max_expiration: SignedDuration::from_hours(30 * 24),
        }
    }
}

/// Which rule of the contract a request broke; each maps to one HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ContractErrorKind {
    /// The body is not JSON. 400.
    NotJson,
    /// The body is a JSON array: multiple notifications are not supported. 400.
    BodyIsArray,
    /// An unknown or repeated property, a value of the wrong JSON type, a body that is not an
    /// object, or a missing required property. 400.
    ContractMismatch,
    /// The notification breaks a rule: invalid payload, bad expiration, lengths. 400.
    InvalidPayload,
    /// An `@odata.type` annotation names a type other than the expected one. 401.
    InvalidDataType,
    /// The notification is larger than the limit. 413.
    TooLarge,
}

/// One problem with one field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldProblem {
    /// The JSON path of the field, such as `payload.visualContent.title`; empty for the body.
    pub field: String,
    /// What is wrong, such as `is required`.
    pub message: String,
}

impl fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() { write!(f, "{}", self.message) } else { write!(f, "{} {}", self.field, self.message) }
    }
}

/// A request that breaks the contract, with every problem found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContractError {
    /// The rule broken (the most severe, when several are).
    pub kind: ContractErrorKind,
    /// Every problem, each naming its field. Never empty.
    pub problems: Vec<FieldProblem>,
}

impl ContractError {
    fn single(kind: ContractErrorKind, field: &str, message: impl Into<String>) -> Self {
        Self { kind, problems: vec![FieldProblem { field: field.to_owned(), message: message.into() }] }
    }

    /// The HTTP status the seed's error table gives this error.
    pub fn http_status(&self) -> u16 {
        match self.kind {
            ContractErrorKind::NotJson
            | ContractErrorKind::BodyIsArray
            | ContractErrorKind::ContractMismatch
            | ContractErrorKind::InvalidPayload => 400,
            ContractErrorKind::InvalidDataType => 401,
            ContractErrorKind::TooLarge => 413,
        }
    }

    /// The Graph error code for the response body.
    pub fn code(&self) -> &'static str {
        match self.kind {
            ContractErrorKind::NotJson | ContractErrorKind::BodyIsArray | ContractErrorKind::ContractMismatch => {
                "invalidRequest"
            }
            ContractErrorKind::InvalidPayload => "invalidPayload",
            ContractErrorKind::InvalidDataType => "invalidDataType",
            ContractErrorKind::TooLarge => "payloadTooLarge",
        }
    }
}

impl fmt::Display for ContractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ContractError {}

/// Collects problems of one request.
#[derive(Default)]
struct Problems {
    structural: Vec<FieldProblem>,
    rules: Vec<FieldProblem>,
    too_large: Vec<FieldProblem>,
}

impl Problems {
    /// Whether `field` already has a problem: each field is reported once, with its first (most
    /// specific) problem, so a missing title is not also reported as an empty one.
    fn has(&self, field: &str) -> bool {
        self.structural.iter().chain(&self.rules).any(|p| {
            // A list with a bad element (`platformTypes[1]`) is not also reported as missing.
            p.field == field || p.field.strip_prefix(field).is_some_and(|rest| rest.starts_with('['))
        })
    }
    fn structural(&mut self, field: &str, message: impl Into<String>) {
        if !self.has(field) {
            self.structural.push(FieldProblem { field: field.into(), message: message.into() });
        }
    }
    fn rule(&mut self, field: &str, message: impl Into<String>) {
        if !self.has(field) {
            self.rules.push(FieldProblem { field: field.into(), message: message.into() });
        }
    }
    fn into_result<T>(self, ok: T) -> Result<T, ContractError> {
        if self.structural.is_empty() && self.rules.is_empty() && self.too_large.is_empty() {
            Ok(ok)
        } else {
            Err(self.into_error())
        }
    }
    /// The error listing every problem; a generic mismatch if (by mistake) there is none.
    fn into_error(self) -> ContractError {
        let kind = if !self.structural.is_empty() {
            ContractErrorKind::ContractMismatch
        } else if !self.rules.is_empty() {
            ContractErrorKind::InvalidPayload
        } else if !self.too_large.is_empty() {
            ContractErrorKind::TooLarge
        } else {
            return ContractError::single(ContractErrorKind::ContractMismatch, "", "does not match the contract");
        };
        let mut problems = self.structural;
        problems.extend(self.rules);
        problems.extend(self.too_large);
        ContractError { kind, problems }
    }
}

/// The `@odata.type` each object of the contract may carry (with or without the leading `#`,
/// in any case).
const EXPECTED_TYPES: &[(&str, &str)] = &[
    ("", "microsoft.graph.notification"),
    ("payload", "microsoft.graph.payloadTypes"),
    ("payload.visualContent", "microsoft.graph.visualProperties"),
    ("targetPolicy", "microsoft.graph.targetPolicyEndpoints"),
    ("fallbackPolicy", "microsoft.graph.fallbackPolicy"),
    ("fallbackPolicy.endpointFallback", "microsoft.graph.fallbackPolicyProperties"),
    ("fallbackPolicy.endpointFallback.visualContent", "microsoft.graph.visualProperties"),
];

const ODATA_TYPE: &str = "@odata.type";

/// Checks and removes the `@odata.type` annotations of the objects the contract knows.
fn strip_odata_types(body: &mut Value) -> Result<(), ContractError> {
    for (path, expected) in EXPECTED_TYPES {
        let mut node = Some(&mut *body);
        for segment in path.split('.').filter(|s| !s.is_empty()) {
            node = node.and_then(|n| n.get_mut(segment));
        }
        let Some(Value::Object(object)) = node else { continue };
        let Some(annotation) = object.remove(ODATA_TYPE) else { continue };
        let field = if path.is_empty() { ODATA_TYPE.to_owned() } else { format!("{path}.{ODATA_TYPE}") };
        let ok =
            matches!(&annotation, Value::String(s) if s.strip_prefix('#').unwrap_or(s).eq_ignore_ascii_case(expected));
        if !ok {
            return Err(ContractError::single(
                ContractErrorKind::InvalidDataType,
                &field,
                format!("names an invalid data type {annotation}; expected #{expected}"),
            ));
        }
    }
    Ok(())
}

/// Reports every object of the contract that is present but not a JSON object (or `null`), and
/// removes it so the rest of the body can still be checked.
///
/// serde reads a JSON array as a struct's fields in declaration order, so without this
/// `"payload": ["text"]` would pass as a raw payload.
fn require_objects(body: &mut Value, problems: &mut Problems) {
    for (path, _) in EXPECTED_TYPES.iter().filter(|(path, _)| !path.is_empty()) {
        let (parent_path, name) = path.rsplit_once('.').unwrap_or(("", path));
        let mut parent = Some(&mut *body);
        for segment in parent_path.split('.').filter(|s| !s.is_empty()) {
            parent = parent.and_then(|n| n.get_mut(segment));
        }
        let Some(Value::Object(parent)) = parent else { continue };
        if let Some(other @ (Value::Array(_) | Value::Bool(_) | Value::Number(_) | Value::String(_))) = parent.get(name)
        {
            problems.structural(path, format!("invalid type: {}, expected an object", json_kind(other)));
            parent.remove(name);
        }
    }
}

/// The most structural problems (unknown properties, wrong JSON types) one error lists.
const MAX_STRUCTURAL_PROBLEMS: usize = 32;

/// Deserializes the wire form, collecting every structural problem rather than the first: each
/// offending value is reported, removed, and deserialization retried (at most
/// [`MAX_STRUCTURAL_PROBLEMS`] times, so the cost stays O(body length)).
///
/// `None` when a problem could not be removed or the bound was reached; `problems` then holds at
/// least one structural problem.
fn deserialize_collecting(body: &mut Value, problems: &mut Problems) -> Option<WireNotification> {
    for _ in 0..MAX_STRUCTURAL_PROBLEMS {
        let error = match serde_path_to_error::deserialize::<_, WireNotification>(&*body) {
            Ok(wire) => return Some(wire),
            Err(error) => error,
        };
        problems.structural(&path_to_field(error.path()), error.inner().to_string());
        if !remove_property(body, error.path()) {
            return None;
        }
    }
    None
}

/// Removes the property at `path` from `body`. A bad element of a list removes the whole list,
/// so later elements keep the positions they were reported with. `false` when there is no such
/// property (the body itself).
fn remove_property(body: &mut Value, path: &serde_path_to_error::Path) -> bool {
    let mut segments: Vec<&serde_path_to_error::Segment> = path.iter().collect();
    while matches!(segments.last(), Some(serde_path_to_error::Segment::Seq { .. })) {
        segments.pop();
    }
    let Some(serde_path_to_error::Segment::Map { key: name }) = segments.pop() else { return false };
    let mut parent = Some(body);
    for segment in segments {
        parent = match (parent, segment) {
            (Some(Value::Object(object)), serde_path_to_error::Segment::Map { key }) => object.get_mut(key),
            (Some(Value::Array(items)), serde_path_to_error::Segment::Seq { index }) => items.get_mut(*index),
            _ => None,
        };
    }
    match parent {
        Some(Value::Object(object)) => object.remove(name).is_some(),
        _ => false,
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WireNotification {
    target_host_name: Option<String>,
    app_notification_id: Option<String>,
    group_name: Option<String>,
    payload: Option<WirePayload>,
    target_policy: Option<WireTargetPolicy>,
    priority: Option<String>,
    display_time_to_live: Option<WireNumber>,
    expiration_date_time: Option<String>,
    fallback_policy: Option<WireFallbackPolicy>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WirePayload {
    raw_content: Option<String>,
    visual_content: Option<WireVisual>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WireVisual {
    title: Option<String>,
    body: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WireTargetPolicy {
    platform_types: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WireFallbackPolicy {
    endpoint_fallback: Option<WireEndpointFallback>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WireEndpointFallback {
    platform_types: Option<Vec<String>>,
    fallback_delay_in_seconds: Option<WireNumber>,
    visual_content: Option<WireVisual>,
}

/// A number that may arrive as a JSON number or a numeric string (the seed sends `"60"`).
/// `None` when it is not a whole number that fits an `i64` (`1.5`, `"abc"`, `1e30`).
struct WireNumber(Option<i64>);

impl WireNumber {
    fn as_i64(&self) -> Option<i64> {
        self.0
    }
}

impl<'de> Deserialize<'de> for WireNumber {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(WireNumberVisitor)
    }
}

struct WireNumberVisitor;

impl Visitor<'_> for WireNumberVisitor {
    type Value = WireNumber;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a whole number of seconds, as a JSON number or a numeric string")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<WireNumber, E> {
        Ok(WireNumber(Some(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<WireNumber, E> {
        Ok(WireNumber(i64::try_from(v).ok()))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<WireNumber, E> {
        Ok(WireNumber(None))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<WireNumber, E> {
        Ok(WireNumber(v.trim().parse::<i64>().ok()))
    }
}

/// Parses a request body into a [`NewNotification`] and validates it at `now`.
///
/// Defaults are left for the store to apply: an absent `priority` or `expirationDateTime` stays
/// `None` here ([`validate`] resolves the expiration). Cost: O(body length).
///
/// # Examples
/// ```
/// use notifeed::contract::{Limits, parse_new_notification};
///
/// let now = "2026-01-01T00:00:00Z".parse().unwrap();
/// let body = br#"{"targetHostName": "contoso.app", "appNotificationId": "n1",
///                 "payload": {"visualContent": {"title": "Hello"}}, "displayTimeToLive": "60"}"#;
/// let new = parse_new_notification(body, &Limits::default(), now).unwrap();
/// assert_eq!(new.display_time_to_live, Some(60));
///
/// let error = parse_new_notification(br#"{"targetHostName": "h", "appNotificationId": "n1",
///     "payload": {"visualContent": {}}}"#, &Limits::default(), now).unwrap_err();
/// assert!(error.to_string().starts_with("payload.visualContent.title is required"));
/// assert_eq!(error.http_status(), 400);
/// ```
///
/// # Errors
/// A [`ContractError`] with every problem found; see the module doc for the order of checks and
/// the status of each.
pub fn parse_new_notification(body: &[u8], limits: &Limits, now: Timestamp) -> Result<NewNotification, ContractError> {
    let mut value = parse_json_without_repeated_properties(body)?;
    match &value {
        Value::Array(_) => {
            return Err(ContractError::single(
                ContractErrorKind::BodyIsArray,
                "",
                "is an array; post one notification per request",
            ));
        }
        Value::Object(_) => {}
        other => {
            return Err(ContractError::single(
                ContractErrorKind::ContractMismatch,
                "",
                format!("must be a JSON object, not {}", json_kind(other)),
            ));
        }
    }
    strip_odata_types(&mut value)?;
    let mut problems = Problems::default();
    require_objects(&mut value, &mut problems);
    let Some(wire) = deserialize_collecting(&mut value, &mut problems) else {
        return Err(problems.into_error());
    };
    let new = from_wire(wire, &mut problems);
    check(&new, limits, now, &mut problems);
    problems.into_result(new)
}

/// Parses JSON, rejecting an object that names one property twice: serde_json would silently
/// keep the last value, and a contract that loses input silently is no contract.
///
/// A syntax error (or nesting 128 levels deep, serde_json's limit) is `NotJson`; a repeated
/// property is a `ContractMismatch` naming it.
fn parse_json_without_repeated_properties(body: &[u8]) -> Result<Value, ContractError> {
    let not_json =
        |e: serde_json::Error| ContractError::single(ContractErrorKind::NotJson, "", format!("is not valid JSON: {e}"));
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = match serde_path_to_error::deserialize::<_, UniqueProperties>(&mut deserializer) {
        Ok(UniqueProperties(value)) => value,
        Err(e) if e.inner().classify() == serde_json::error::Category::Data => {
            let field = path_to_field(e.path());
            return Err(ContractError::single(ContractErrorKind::ContractMismatch, &field, e.into_inner().to_string()));
        }
        Err(e) => return Err(not_json(e.into_inner())),
    };
    deserializer.end().map_err(not_json)?;
    Ok(value)
}

fn path_to_field(path: &serde_path_to_error::Path) -> String {
    let path = path.to_string();
    if path == "." { String::new() } else { path }
}

/// Any JSON value whose objects name each property once.
struct UniqueProperties(Value);

impl<'de> Deserialize<'de> for UniqueProperties {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniquePropertiesVisitor).map(UniqueProperties)
    }
}

/// The value of a property; `repeated` when the object already had one by that name.
struct PropertyValue {
    repeated: bool,
}

impl<'de> DeserializeSeed<'de> for PropertyValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        let UniqueProperties(value) = UniqueProperties::deserialize(deserializer)?;
        // Failing inside the value (not after the key) makes the error's path name the property.
        if self.repeated { Err(D::Error::custom("is given more than once")) } else { Ok(value) }
    }
}

struct UniquePropertiesVisitor;

impl<'de> Visitor<'de> for UniquePropertiesVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(UniqueProperties(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            let repeated = object.contains_key(&name);
            let value = map.next_value_seed(PropertyValue { repeated })?;
            object.insert(name, value);
        }
        Ok(Value::Object(object))
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn from_wire(wire: WireNotification, problems: &mut Problems) -> NewNotification {
    let target_host_name = wire.target_host_name.unwrap_or_else(|| {
        problems.structural("targetHostName", "is required");
        String::new()
    });
    let app_notification_id = wire.app_notification_id.unwrap_or_else(|| {
        problems.structural("appNotificationId", "is required");
        String::new()
    });
    let payload = match wire.payload {
        None => {
            problems.structural("payload", "is required");
            Payload::default()
        }
        Some(p) => Payload {
            raw_content: p.raw_content,
            visual_content: p.visual_content.map(|v| visual_from_wire(v, "payload.visualContent", problems)),
        },
    };
    let platforms = match wire.target_policy.and_then(|t| t.platform_types) {
        None => Platforms::ALL,
        Some(names) => platforms_from_wire(&names, "targetPolicy.platformTypes", problems),
    };
    let priority = wire.priority.and_then(|p| {
        let parsed = Priority::parse_any_case(&p);
        if parsed.is_none() {
            problems.rule("priority", format!("must be one of None, High, Low, not {p:?}"));
        }
        parsed
    });
    let display_time_to_live =
        wire.display_time_to_live.and_then(|n| match n.as_i64().filter(|s| (1..=i64::from(i32::MAX)).contains(s)) {
            Some(s) => u32::try_from(s).ok(),
            None => {
                problems.rule("displayTimeToLive", "must be a positive whole number of seconds (at most 2147483647)");
                None
            }
        });
    let expiration =
        wire.expiration_date_time.and_then(|text| match trim_sub_nanosecond_digits(&text).parse::<Timestamp>() {
            Ok(t) => Some(t),
            Err(e) => {
                problems.rule("expirationDateTime", format!("is not an RFC 3339 date-time with offset: {e}"));
                None
            }
        });
    let fallback_policy = wire.fallback_policy.and_then(|f| {
        let Some(ep) = f.endpoint_fallback else {
            problems.rule("fallbackPolicy.endpointFallback", "is required");
            return None;
        };
        let base = "fallbackPolicy.endpointFallback";
        match ep.platform_types {
            None => problems.rule(&format!("{base}.platformTypes"), "is required"),
            Some(names) => {
                let set = platforms_from_wire(&names, &format!("{base}.platformTypes"), problems);
                if set != Platforms::of(&[Platform::Ios]) {
                    problems.rule(&format!("{base}.platformTypes"), "must be [\"iOS\"]: only iOS supports fallback");
                }
            }
        }
        let delay = match ep.fallback_delay_in_seconds.map(|n| n.as_i64()) {
            None => {
                problems.rule(&format!("{base}.fallbackDelayInSeconds"), "is required");
                0
            }
            Some(None) => {
                problems.rule(&format!("{base}.fallbackDelayInSeconds"), "must be a whole number of seconds");
                0
            }
            Some(Some(s)) => u32::try_from(s).unwrap_or(0),
        };
        let visual = match ep.visual_content {
            None => {
                problems.rule(&format!("{base}.visualContent"), "is required");
                VisualContent { title: String::new(), body: None }
            }
            Some(v) => visual_from_wire(v, &format!("{base}.visualContent"), problems),
        };
        Some(FallbackPolicy { fallback_delay_seconds: delay, visual_content: visual })
    });
    NewNotification {
        target_host_name,
        app_notification_id,
        group_name: wire.group_name,
        payload,
        platforms,
        priority,
        display_time_to_live,
        expiration,
        fallback_policy,
    }
}

fn visual_from_wire(v: WireVisual, field: &str, problems: &mut Problems) -> VisualContent {
    let title = v.title.unwrap_or_else(|| {
        problems.rule(&format!("{field}.title"), "is required");
        String::new()
    });
    VisualContent { title, body: v.body }
}

fn platforms_from_wire(names: &[String], field: &str, problems: &mut Problems) -> Platforms {
    let mut found = Vec::new();
    for (i, name) in names.iter().enumerate() {
        match Platform::parse_any_case(name) {
            Some(p) => found.push(p),
            None => problems
                .rule(&format!("{field}[{i}]"), format!("must be one of windows, iOS, android, webPush, not {name:?}")),
        }
    }
    Platforms::of(&found)
}

/// Validates `new` against `limits` at `now`, and returns the expiration it will be stored with
/// (its own, or `now + limits.max_expiration` when absent).
///
/// Engines call this on every append, so a notification built in Rust meets the same rules as
/// one parsed from JSON.
///
/// # Errors
/// A [`ContractError`] of kind `InvalidPayload` (or `TooLarge`) listing every broken rule.
pub fn validate(new: &NewNotification, limits: &Limits, now: Timestamp) -> Result<Timestamp, ContractError> {
    let mut problems = Problems::default();
    let expiration = check(new, limits, now, &mut problems);
    problems.into_result(expiration)
}

/// The rules of the contract, shared by parsing and [`validate`].
fn check(new: &NewNotification, limits: &Limits, now: Timestamp, problems: &mut Problems) -> Timestamp {
    if new.target_host_name.is_empty() {
        problems.rule("targetHostName", "must not be empty");
    } else if new.target_host_name.len() > limits.max_target_host_name_bytes {
        problems.rule("targetHostName", format!("must be at most {} bytes", limits.max_target_host_name_bytes));
    }
    let app_id = &new.app_notification_id;
    if app_id.is_empty() {
        problems.rule("appNotificationId", "must not be empty");
    } else if app_id.len() > limits.max_app_notification_id_bytes {
        problems.rule("appNotificationId", format!("must be at most {} bytes", limits.max_app_notification_id_bytes));
    }
    if let Some(group) = &new.group_name {
        if group.is_empty() {
            problems.rule("groupName", "must not be empty when present");
        } else if group.len() > limits.max_group_name_bytes {
            problems.rule("groupName", format!("must be at most {} bytes", limits.max_group_name_bytes));
        }
    }
    check_payload(&new.payload, limits, problems);
    if new.platforms.is_empty() {
        problems.rule("targetPolicy.platformTypes", "must name at least one platform");
    }
    if new.display_time_to_live == Some(0) || new.display_time_to_live.is_some_and(|s| s > i32::MAX as u32) {
        problems.rule("displayTimeToLive", "must be a positive whole number of seconds (at most 2147483647)");
    }
    let latest = now.checked_add(limits.max_expiration).unwrap_or(Timestamp::MAX);
    let expiration = match new.expiration {
        None => latest,
        Some(t) if t <= now => {
            problems.rule("expirationDateTime", format!("must be in the future (it is {t}, now is {now})"));
            t
        }
        Some(t) if t > latest => {
            let days = limits.max_expiration.as_secs() / 86_400;
            problems
                .rule("expirationDateTime", format!("must be at most {days} days ahead (latest allowed: {latest})"));
            t
        }
        Some(t) => t,
    };
    if let Some(fallback) = &new.fallback_policy {
        let base = "fallbackPolicy.endpointFallback";
        if !(60..=600).contains(&fallback.fallback_delay_seconds) {
            problems.rule(&format!("{base}.fallbackDelayInSeconds"), "must be between 60 and 600");
        }
        if fallback.visual_content.title.is_empty() {
            problems.rule(&format!("{base}.visualContent.title"), "must not be empty");
        }
        if !new.platforms.contains(Platform::Ios) {
            problems.rule("targetPolicy.platformTypes", "must include iOS when fallbackPolicy is set");
        }
    }
    let size = content_bytes(new);
    if size > limits.max_notification_bytes {
        problems.too_large.push(FieldProblem {
            field: String::new(),
            message: format!("is {size} bytes; at most {} are allowed", limits.max_notification_bytes),
        });
    }
    expiration
}

fn check_payload(payload: &Payload, limits: &Limits, problems: &mut Problems) {
    let mut valid_parts = 0;
    if let Some(raw) = &payload.raw_content {
        if raw.len() > limits.max_raw_content_bytes {
            problems.rule("payload.rawContent", format!("must be at most {} bytes", limits.max_raw_content_bytes));
        } else {
            valid_parts += 1;
        }
    }
    if let Some(visual) = &payload.visual_content {
        if visual.title.is_empty() {
            problems.rule("payload.visualContent.title", "is required");
        } else {
            valid_parts += 1;
        }
    }
    if payload.raw_content.is_none() && payload.visual_content.is_none() {
        problems.rule("payload", "is invalid: it needs rawContent or visualContent");
    } else if valid_parts == 0 {
        problems.rule("payload", "is invalid: neither rawContent nor visualContent is valid");
    }
}

/// The size the notification counts against [`Limits::max_notification_bytes`]: the bytes of all
/// its strings.
pub fn content_bytes(new: &NewNotification) -> usize {
    let visual = |v: &VisualContent| v.title.len() + v.body.as_ref().map_or(0, String::len);
    new.target_host_name.len()
        + new.app_notification_id.len()
        + new.group_name.as_ref().map_or(0, String::len)
        + new.payload.raw_content.as_ref().map_or(0, String::len)
        + new.payload.visual_content.as_ref().map_or(0, visual)
        + new.fallback_policy.as_ref().map_or(0, |f| visual(&f.visual_content))
}

/// RFC 3339 allows any number of fractional-second digits; jiff reads at most nine
/// (nanoseconds). Digits past the ninth cannot change the stored instant, so they are dropped
/// before parsing (truncation, as a nanosecond clock would).
fn trim_sub_nanosecond_digits(text: &str) -> std::borrow::Cow<'_, str> {
    let Some(dot) = text.find('.') else { return text.into() };
    let digits = text[dot + 1..].bytes().take_while(u8::is_ascii_digit).count();
    if digits <= 9 {
        return text.into();
    }
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..dot + 1 + 9]);
    out.push_str(&text[dot + 1 + digits..]);
    out.into()
}

#[cfg(test)]
mod fraction_tests {
    use super::trim_sub_nanosecond_digits;

    #[test]
    fn fractions_longer_than_nanoseconds_are_truncated_to_nine_digits() {
        assert_eq!(trim_sub_nanosecond_digits("2030-01-01T00:00:00.1234567890123Z"), "2030-01-01T00:00:00.123456789Z");
        assert_eq!(trim_sub_nanosecond_digits("2030-01-01T00:00:00.25Z"), "2030-01-01T00:00:00.25Z");
        assert_eq!(trim_sub_nanosecond_digits("2030-01-01T00:00:00Z"), "2030-01-01T00:00:00Z");
    }
}
