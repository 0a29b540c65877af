//! The notification, as posted and as stored.
//!
//! These are plain data types. Turning JSON into a [`NewNotification`] and checking it against
//! the Graph contract lives in [`crate::contract`]; turning a stored [`Notification`] back into
//! Graph's JSON shape is [`Notification::to_graph_json`].

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde_json::{Map, Value, json};
use uuid::Uuid;

/// The store-assigned identity of a notification: a random (version 4) UUID.
///
/// A replacement (a second append with the same `appNotificationId`) keeps the id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct NotificationId(pub Uuid);

impl NotificationId {
    /// A fresh random id.
    pub fn new_random() -> Self {
        Self(Uuid::new_v4())
    }

    /// The id's 16 bytes, big-endian, as engines store them.
    pub fn to_bytes(self) -> [u8; 16] {
        *self.0.as_bytes()
    }

    /// The inverse of [`NotificationId::to_bytes`].
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(Uuid::from_bytes(bytes))
    }
}

impl fmt::Display for NotificationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for NotificationId {
    type Err = uuid::Error;

    /// Parses the hyphenated (or any other standard) UUID form.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

/// A platform a notification is distributed to (`targetPolicy.platformTypes`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Platform {
    /// `windows`
    Windows,
    /// `iOS`
    Ios,
    /// `android`
    Android,
    /// `webPush`
    WebPush,
}

impl Platform {
    /// Every platform, in canonical order.
    pub const ALL: [Platform; 4] = [Platform::Windows, Platform::Ios, Platform::Android, Platform::WebPush];

    /// The canonical spelling used in responses (`windows`, `iOS`, `android`, `webPush`).
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Windows => "windows",
            Platform::Ios => "iOS",
            Platform::Android => "android",
            Platform::WebPush => "webPush",
        }
    }

    /// Parses any casing of a platform name (`"ios"`, `"IOS"`, `"iOS"`); `None` for anything else.
    pub fn parse_any_case(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str().eq_ignore_ascii_case(s))
    }

    fn bit(self) -> u8 {
        match self {
            Platform::Windows => 1,
            Platform::Ios => 2,
            Platform::Android => 4,
            Platform::WebPush => 8,
        }
    }
}

/// A set of platforms, stored as a bit set. The default is every platform.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Platforms(u8);

impl Platforms {
    /// The empty set.
    pub const NONE: Platforms = Platforms(0);
    /// Every platform: the default target policy.
    pub const ALL: Platforms = Platforms(0b1111);

    /// The set holding `platforms`.
    pub fn of(platforms: &[Platform]) -> Self {
        Self(platforms.iter().fold(0, |bits, p| bits | p.bit()))
    }

    /// Whether `platform` is in the set.
    pub fn contains(self, platform: Platform) -> bool {
        self.0 & platform.bit() != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The members, in canonical order.
    pub fn iter(self) -> impl Iterator<Item = Platform> {
        Platform::ALL.into_iter().filter(move |p| self.contains(*p))
    }

    /// The raw bits (Windows = 1, iOS = 2, Android = 4, WebPush = 8), as engines store them.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// The inverse of [`Platforms::bits`]; unknown bits are dropped.
    pub fn from_bits(bits: u8) -> Self {
        Self(bits & Self::ALL.0)
    }
}

impl Default for Platforms {
    fn default() -> Self {
        Self::ALL
    }
}

impl fmt::Debug for Platforms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter().map(Platform::as_str)).finish()
    }
}

/// Delivery priority (`priority`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[non_exhaustive]
pub enum Priority {
    /// `None`: the default for raw notifications.
    None,
    /// `High`: the default for visual notifications.
    High,
    /// `Low`
    Low,
}

impl Priority {
    /// The canonical spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::None => "None",
            Priority::High => "High",
            Priority::Low => "Low",
        }
    }

    /// Parses any casing; `None` for an unknown name.
    pub fn parse_any_case(s: &str) -> Option<Self> {
        [Priority::None, Priority::High, Priority::Low].into_iter().find(|p| p.as_str().eq_ignore_ascii_case(s))
    }
}

/// Whether the user has read a notification (`readState`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
#[non_exhaustive]
pub enum ReadState {
    /// `Unread`: every new or replaced notification starts here.
    #[default]
    Unread,
    /// `Read`
    Read,
}

impl ReadState {
    /// The canonical spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ReadState::Unread => "Unread",
            ReadState::Read => "Read",
        }
    }

    /// Parses any casing; `None` for an unknown name.
    pub fn parse_any_case(s: &str) -> Option<Self> {
        [ReadState::Unread, ReadState::Read].into_iter().find(|p| p.as_str().eq_ignore_ascii_case(s))
    }
}

/// What the user did with a notification (`userActionState`), as in the Graph notification SDK.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
#[non_exhaustive]
pub enum UserActionState {
    /// `NoInteraction`: every new or replaced notification starts here.
    #[default]
    NoInteraction,
    /// `Activated`
    Activated,
    /// `Dismissed`: the notification stays in the feed; the app decides what dismissal means.
    Dismissed,
    /// `Snoozed`
    Snoozed,
}

impl UserActionState {
    /// Every state, in the SDK's numeric order.
    pub const ALL: [UserActionState; 4] = [
        UserActionState::NoInteraction,
        UserActionState::Activated,
        UserActionState::Dismissed,
        UserActionState::Snoozed,
    ];

    /// The canonical spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            UserActionState::NoInteraction => "NoInteraction",
            UserActionState::Activated => "Activated",
            UserActionState::Dismissed => "Dismissed",
            UserActionState::Snoozed => "Snoozed",
        }
    }

    /// Parses any casing; `None` for an unknown name.
    pub fn parse_any_case(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str().eq_ignore_ascii_case(s))
    }
}

/// The visual part of a payload (`payload.visualContent`): shown by the OS on Windows, iOS and
/// Android.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct VisualContent {
    /// `title`: required.
    pub title: String,
    /// `body`: optional.
    pub body: Option<String>,
}

/// What a notification carries (`payload`). At least one of the two parts is present.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Payload {
    /// `rawContent`: data delivered to the app on every platform.
    pub raw_content: Option<String>,
    /// `visualContent`: rendered by the OS.
    pub visual_content: Option<VisualContent>,
}

/// The iOS fallback (`fallbackPolicy.endpointFallback`): a toast shown when a raw notification
/// may not have arrived.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct FallbackPolicy {
    /// `fallbackDelayInSeconds`, in `60..=600`.
    pub fallback_delay_seconds: u32,
    /// The toast to show instead.
    pub visual_content: VisualContent,
}

/// A notification as an app service posts it: the input of [`crate::FeedStore::append`].
///
/// Build one with [`NewNotification::visual`] or [`NewNotification::raw`] and adjust the public
/// fields, or parse Graph JSON with [`crate::contract::parse_new_notification`]. The store checks
/// it against its [`crate::Limits`] again on append, so an invalid value is an error, never
/// stored.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NewNotification {
    /// `targetHostName`: the app the notification is for.
    pub target_host_name: String,
    /// `appNotificationId`: the app's own id, unique among the live notifications of a feed.
    pub app_notification_id: String,
    /// `groupName`, at most 256 bytes by default.
    pub group_name: Option<String>,
    /// `payload`.
    pub payload: Payload,
    /// `targetPolicy.platformTypes`; default: every platform.
    pub platforms: Platforms,
    /// `priority`; `None` here means the contract's default: `High` for visual notifications,
    /// `None` for raw ones.
    pub priority: Option<Priority>,
    /// `displayTimeToLive` in seconds (a positive Int32); `None` means "until expiration".
    pub display_time_to_live: Option<u32>,
    /// `expirationDateTime`; `None` means the maximum the store allows (30 days by default).
    pub expiration: Option<Timestamp>,
    /// `fallbackPolicy` (iOS only).
    pub fallback_policy: Option<FallbackPolicy>,
}

impl NewNotification {
    /// A visual notification with a title, for every platform, with default expiration.
    pub fn visual(target_host_name: &str, app_notification_id: &str, title: &str) -> Self {
        Self {
            payload: Payload {
                raw_content: None,
                visual_content: Some(VisualContent { title: title.to_owned(), body: None }),
            },
            ..Self::empty(target_host_name, app_notification_id)
        }
    }

    /// A raw (data-only) notification, for every platform, with default expiration.
    pub fn raw(target_host_name: &str, app_notification_id: &str, raw_content: &str) -> Self {
        Self {
            payload: Payload { raw_content: Some(raw_content.to_owned()), visual_content: None },
            ..Self::empty(target_host_name, app_notification_id)
        }
    }

    fn empty(target_host_name: &str, app_notification_id: &str) -> Self {
        Self {
            target_host_name: target_host_name.to_owned(),
            app_notification_id: app_notification_id.to_owned(),
            group_name: None,
            payload: Payload::default(),
            platforms: Platforms::ALL,
            priority: None,
            display_time_to_live: None,
            expiration: None,
            fallback_policy: None,
        }
    }

    /// Sets the group (builder style).
    pub fn with_group(mut self, group: &str) -> Self {
        self.group_name = Some(group.to_owned());
        self
    }

    /// Sets the expiration (builder style).
    pub fn expiring_at(mut self, expiration: Timestamp) -> Self {
        self.expiration = Some(expiration);
        self
    }

    /// The priority the contract gives this notification: the explicit one, else `High` when it
    /// has visual content and `None` when it is raw only.
    pub fn effective_priority(&self) -> Priority {
        self.priority.unwrap_or(if self.payload.visual_content.is_some() { Priority::High } else { Priority::None })
    }
}

/// A notification as the store holds and returns it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Notification {
    /// `id`: assigned by the store on first append; kept by replacements.
    pub id: NotificationId,
    /// `targetHostName`.
    pub target_host_name: String,
    /// `appNotificationId`.
    pub app_notification_id: String,
    /// `groupName`.
    pub group_name: Option<String>,
    /// `payload`.
    pub payload: Payload,
    /// `targetPolicy.platformTypes`.
    pub platforms: Platforms,
    /// `priority`, with the contract's default applied.
    pub priority: Priority,
    /// `displayTimeToLive` as posted, in seconds, counted from `last_modified`; `None` means
    /// "until expiration".
    pub display_time_to_live: Option<u32>,
    /// `expirationDateTime`: from this instant on, the notification is gone.
    pub expiration: Timestamp,
    /// `fallbackPolicy`.
    pub fallback_policy: Option<FallbackPolicy>,
    /// `createdDateTime`: when the id was first assigned.
    pub created: Timestamp,
    /// `lastModifiedDateTime`: the last append, replacement or state change.
    pub last_modified: Timestamp,
    /// `readState`.
    pub read_state: ReadState,
    /// `userActionState`.
    pub user_action_state: UserActionState,
}

impl Notification {
    /// Builds the stored form of `new` as first appended at `now`.
    ///
    /// `expiration` is the resolved expiration (the default already applied by the caller).
    pub fn from_new(id: NotificationId, new: NewNotification, expiration: Timestamp, now: Timestamp) -> Self {
        let priority = new.effective_priority();
        Self {
            id,
            target_host_name: new.target_host_name,
            app_notification_id: new.app_notification_id,
            group_name: new.group_name,
            payload: new.payload,
            platforms: new.platforms,
            priority,
            display_time_to_live: new.display_time_to_live,
            expiration,
            fallback_policy: new.fallback_policy,
            created: now,
            last_modified: now,
            read_state: ReadState::Unread,
            user_action_state: UserActionState::NoInteraction,
        }
    }

    /// Whether the notification has expired at `now` (expiration is exclusive: at the instant of
    /// `expirationDateTime` it is already gone).
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expiration <= now
    }

    /// The remaining display time in whole seconds at `now`, never negative.
    ///
    /// Counted from `last_modified`; without an explicit `displayTimeToLive`, the time left until
    /// expiration.
    pub fn remaining_display_seconds(&self, now: Timestamp) -> i64 {
        let deadline = match self.display_time_to_live {
            Some(ttl) => self
                .last_modified
                .checked_add(jiff::SignedDuration::from_secs(i64::from(ttl)))
                .unwrap_or(Timestamp::MAX)
                .min(self.expiration),
            None => self.expiration,
        };
        let left = deadline.duration_since(now);
        (left.as_secs()).clamp(0, i64::from(i32::MAX))
    }

    /// The notification in Graph's JSON shape at `now`: camelCase names, canonical enum spellings,
    /// `displayTimeToLive` as the remaining whole seconds, and every stored-only property.
    pub fn to_graph_json(&self, now: Timestamp) -> Value {
        let mut payload = Map::new();
        if let Some(raw) = &self.payload.raw_content {
            payload.insert("rawContent".into(), Value::String(raw.clone()));
        }
        if let Some(visual) = &self.payload.visual_content {
            payload.insert("visualContent".into(), visual_json(visual));
        }
        let mut out = Map::new();
        out.insert("id".into(), Value::String(self.id.to_string()));
        out.insert("targetHostName".into(), Value::String(self.target_host_name.clone()));
        out.insert("appNotificationId".into(), Value::String(self.app_notification_id.clone()));
        out.insert("displayTimeToLive".into(), json!(self.remaining_display_seconds(now)));
        out.insert("expirationDateTime".into(), Value::String(format_timestamp(self.expiration)));
        out.insert("groupName".into(), self.group_name.clone().map(Value::String).unwrap_or(Value::Null));
        out.insert("priority".into(), Value::String(self.priority.as_str().into()));
        out.insert("payload".into(), Value::Object(payload));
        out.insert(
            "targetPolicy".into(),
            json!({ "platformTypes": self.platforms.iter().map(Platform::as_str).collect::<Vec<_>>() }),
        );
        if let Some(fallback) = &self.fallback_policy {
            out.insert(
                "fallbackPolicy".into(),
                json!({ "endpointFallback": {
                    "platformTypes": ["iOS"],
                    "fallbackDelayInSeconds": fallback.fallback_delay_seconds,
                    "visualContent": visual_json(&fallback.visual_content),
                }}),
            );
        }
        out.insert("createdDateTime".into(), Value::String(format_timestamp(self.created)));
        out.insert("lastModifiedDateTime".into(), Value::String(format_timestamp(self.last_modified)));
        out.insert("readState".into(), Value::String(self.read_state.as_str().into()));
        out.insert("userActionState".into(), Value::String(self.user_action_state.as_str().into()));
        Value::Object(out)
    }
}

fn visual_json(visual: &VisualContent) -> Value {
    let mut v = Map::new();
    v.insert("title".into(), Value::String(visual.title.clone()));
    if let Some(body) = &visual.body {
        v.insert("body".into(), Value::String(body.clone()));
    }
    Value::Object(v)
}

/// Formats a timestamp as RFC 3339 in UTC with the shortest exact fraction
/// (`2019-10-28T22:05:36.25Z`), as Graph does.
pub fn format_timestamp(t: Timestamp) -> String {
    t.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_parse_accepts_any_case_and_prints_canonical() {
        assert_eq!(Platform::parse_any_case("ios"), Some(Platform::Ios));
        assert_eq!(Platform::parse_any_case("WEBPUSH"), Some(Platform::WebPush));
        assert_eq!(Platform::parse_any_case("linux"), None);
        assert_eq!(Platform::Ios.as_str(), "iOS");
    }

    #[test]
    fn platform_set_round_trips_through_bits() {
        let set = Platforms::of(&[Platform::Ios, Platform::WebPush]);
        assert_eq!(Platforms::from_bits(set.bits()), set);
        assert!(set.contains(Platform::Ios) && !set.contains(Platform::Android));
        assert_eq!(set.iter().count(), 2);
    }

    #[test]
    fn default_priority_depends_on_payload_kind() {
        assert_eq!(NewNotification::visual("h", "a", "t").effective_priority(), Priority::High);
        assert_eq!(NewNotification::raw("h", "a", "r").effective_priority(), Priority::None);
    }

    #[test]
    fn remaining_display_seconds_floors_and_never_goes_negative() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap_or(Timestamp::UNIX_EPOCH);
        let mut n = Notification::from_new(
            NotificationId::new_random(),
            NewNotification::visual("h", "a", "t"),
            now + jiff::SignedDuration::from_hours(1),
            now,
        );
        n.display_time_to_live = Some(60);
        assert_eq!(n.remaining_display_seconds(now), 60);
        assert_eq!(n.remaining_display_seconds(now + jiff::SignedDuration::from_millis(250)), 59);
        assert_eq!(n.remaining_display_seconds(now + jiff::SignedDuration::from_secs(600)), 0);
    }

    #[test]
    fn timestamps_print_the_shortest_exact_fraction() {
        let t: Timestamp = "2019-10-28T22:05:36.250Z".parse().unwrap_or(Timestamp::UNIX_EPOCH);
        assert_eq!(format_timestamp(t), "2019-10-28T22:05:36.25Z");
    }
}
