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
///
/// Its strings (`targetHostName`, `appNotificationId`, `groupName`, the payload's and the
/// fallback's texts) are held in one allocation and read through the accessors below, so that
/// reading a notification from an engine allocates once, not once per string: decoding a page of
/// 20 took about half the time it took with a `String` per field (benches/README.md, "One
/// allocation per notification"). The other properties are public fields.
#[derive(Clone, PartialEq, Eq)]
pub struct Notification {
    /// `id`: assigned by the store on first append; kept by replacements.
    pub id: NotificationId,
    /// `targetPolicy.platformTypes`.
    pub platforms: Platforms,
    /// `priority`, with the contract's default applied.
    pub priority: Priority,
    /// `displayTimeToLive` as posted, in seconds, counted from `last_modified`; `None` means
    /// "until expiration".
    pub display_time_to_live: Option<u32>,
    /// `expirationDateTime`: from this instant on, the notification is gone.
    pub expiration: Timestamp,
    /// `createdDateTime`: when the id was first assigned.
    pub created: Timestamp,
    /// `lastModifiedDateTime`: the last append, replacement or state change.
    pub last_modified: Timestamp,
    /// `readState`.
    pub read_state: ReadState,
    /// `userActionState`.
    pub user_action_state: UserActionState,
    /// `fallbackPolicy.endpointFallback.fallbackDelayInSeconds`; meaningful only when the text
    /// holds a fallback title.
    fallback_delay_seconds: u32,
    text: Text,
}

/// The borrowed strings of a [`Notification`], one per part of its text: what
/// [`Notification::assemble`] packs into one allocation. `title` is `Some` exactly when there
/// is visual content, and `fallback_title` exactly when there is a fallback policy.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TextParts<'a> {
    pub target_host_name: &'a str,
    pub app_notification_id: &'a str,
    pub group_name: Option<&'a str>,
    pub raw_content: Option<&'a str>,
    pub title: Option<&'a str>,
    pub body: Option<&'a str>,
    pub fallback_title: Option<&'a str>,
    pub fallback_body: Option<&'a str>,
}

/// The strings of a notification, concatenated in one `Box<str>`, with where each ends.
#[derive(Clone, PartialEq, Eq)]
struct Text {
    all: Box<str>,
    /// The end of each part in `all`, in [`TextParts`] order; each starts where the one before
    /// ends (the first at 0).
    ends: [usize; PARTS],
    /// Bit `i` set when optional part `i` is present (an empty string is present; `None` is not).
    present: u8,
}

const PARTS: usize = 8;

impl Text {
    fn pack(parts: &TextParts<'_>) -> Self {
        // A body without its title is no part of the model: dropped, so that no hidden part
        // can make two notifications that read the same compare unequal.
        let list = [
            Some(parts.target_host_name),
            Some(parts.app_notification_id),
            parts.group_name,
            parts.raw_content,
            parts.title,
            parts.title.and(parts.body),
            parts.fallback_title,
            parts.fallback_title.and(parts.fallback_body),
        ];
        let mut all = String::with_capacity(list.iter().flatten().map(|s| s.len()).sum());
        let mut ends = [0; PARTS];
        let mut present = 0;
        for (i, part) in list.iter().enumerate() {
            if let Some(s) = part {
                all.push_str(s);
                present |= 1 << i;
            }
            ends[i] = all.len();
        }
        Self { all: all.into_boxed_str(), ends, present }
    }

    fn part(&self, i: usize) -> Option<&str> {
        if self.present & (1 << i) == 0 {
            return None;
        }
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.all.get(start..self.ends[i])
    }

    fn required(&self, i: usize) -> &str {
        self.part(i).unwrap_or_default()
    }
}

/// A notification's `payload`, borrowed from a [`Notification`]. Compares equal to the
/// [`Payload`] it was stored from; [`Payload::from`] copies it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PayloadRef<'a> {
    /// `rawContent`.
    pub raw_content: Option<&'a str>,
    /// `visualContent`.
    pub visual_content: Option<VisualContentRef<'a>>,
}

/// A `visualContent`, borrowed from a [`Notification`]. Compares equal to the
/// [`VisualContent`] it was stored from; [`VisualContent::from`] copies it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct VisualContentRef<'a> {
    /// `title`.
    pub title: &'a str,
    /// `body`.
    pub body: Option<&'a str>,
}

/// A `fallbackPolicy`, borrowed from a [`Notification`]. Compares equal to the
/// [`FallbackPolicy`] it was stored from; [`FallbackPolicy::from`] copies it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FallbackPolicyRef<'a> {
    /// `fallbackDelayInSeconds`.
    pub fallback_delay_seconds: u32,
    /// The toast to show instead.
    pub visual_content: VisualContentRef<'a>,
}

impl From<VisualContentRef<'_>> for VisualContent {
    fn from(v: VisualContentRef<'_>) -> Self {
        Self { title: v.title.to_owned(), body: v.body.map(str::to_owned) }
    }
}

impl From<PayloadRef<'_>> for Payload {
    fn from(p: PayloadRef<'_>) -> Self {
        Self { raw_content: p.raw_content.map(str::to_owned), visual_content: p.visual_content.map(Into::into) }
    }
}

impl From<FallbackPolicyRef<'_>> for FallbackPolicy {
    fn from(f: FallbackPolicyRef<'_>) -> Self {
        Self { fallback_delay_seconds: f.fallback_delay_seconds, visual_content: f.visual_content.into() }
    }
}

impl<'a> From<&'a VisualContent> for VisualContentRef<'a> {
    fn from(v: &'a VisualContent) -> Self {
        Self { title: &v.title, body: v.body.as_deref() }
    }
}

impl<'a> From<&'a Payload> for PayloadRef<'a> {
    fn from(p: &'a Payload) -> Self {
        Self { raw_content: p.raw_content.as_deref(), visual_content: p.visual_content.as_ref().map(Into::into) }
    }
}

impl<'a> From<&'a FallbackPolicy> for FallbackPolicyRef<'a> {
    fn from(f: &'a FallbackPolicy) -> Self {
        Self { fallback_delay_seconds: f.fallback_delay_seconds, visual_content: (&f.visual_content).into() }
    }
}

impl PartialEq<Payload> for PayloadRef<'_> {
    fn eq(&self, other: &Payload) -> bool {
        *self == PayloadRef::from(other)
    }
}

impl PartialEq<PayloadRef<'_>> for Payload {
    fn eq(&self, other: &PayloadRef<'_>) -> bool {
        PayloadRef::from(self) == *other
    }
}

impl PartialEq<FallbackPolicy> for FallbackPolicyRef<'_> {
    fn eq(&self, other: &FallbackPolicy) -> bool {
        *self == FallbackPolicyRef::from(other)
    }
}

impl PartialEq<FallbackPolicyRef<'_>> for FallbackPolicy {
    fn eq(&self, other: &FallbackPolicyRef<'_>) -> bool {
        FallbackPolicyRef::from(self) == *other
    }
}

impl PartialEq<VisualContent> for VisualContentRef<'_> {
    fn eq(&self, other: &VisualContent) -> bool {
        *self == VisualContentRef::from(other)
    }
}

impl PartialEq<VisualContentRef<'_>> for VisualContent {
    fn eq(&self, other: &VisualContentRef<'_>) -> bool {
        VisualContentRef::from(self) == *other
    }
}

impl Notification {
    /// The bytes this notification's strings hold on the heap (for caches that count what
    /// they keep).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.text.all.len()
    }

    /// Builds the stored form of `new` as first appended at `now`.
    ///
    /// `expiration` is the resolved expiration (the default already applied by the caller).
    pub fn from_new(id: NotificationId, new: NewNotification, expiration: Timestamp, now: Timestamp) -> Self {
        let priority = new.effective_priority();
        let visual = new.payload.visual_content.as_ref();
        let fallback = new.fallback_policy.as_ref();
        let text = Text::pack(&TextParts {
            target_host_name: &new.target_host_name,
            app_notification_id: &new.app_notification_id,
            group_name: new.group_name.as_deref(),
            raw_content: new.payload.raw_content.as_deref(),
            title: visual.map(|v| v.title.as_str()),
            body: visual.and_then(|v| v.body.as_deref()),
            fallback_title: fallback.map(|f| f.visual_content.title.as_str()),
            fallback_body: fallback.and_then(|f| f.visual_content.body.as_deref()),
        });
        Self {
            id,
            platforms: new.platforms,
            priority,
            display_time_to_live: new.display_time_to_live,
            expiration,
            created: now,
            last_modified: now,
            read_state: ReadState::Unread,
            user_action_state: UserActionState::NoInteraction,
            fallback_delay_seconds: fallback.map_or(0, |f| f.fallback_delay_seconds),
            text,
        }
    }

    /// A notification from its strings and its other properties, the strings copied into one
    /// allocation: what the codec decodes into.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn assemble(
        id: NotificationId,
        text: &TextParts<'_>,
        fallback_delay_seconds: u32,
        platforms: Platforms,
        priority: Priority,
        display_time_to_live: Option<u32>,
        expiration: Timestamp,
        created: Timestamp,
        last_modified: Timestamp,
        read_state: ReadState,
        user_action_state: UserActionState,
    ) -> Self {
        Self {
            id,
            platforms,
            priority,
            display_time_to_live,
            expiration,
            created,
            last_modified,
            read_state,
            user_action_state,
            fallback_delay_seconds: if text.fallback_title.is_some() { fallback_delay_seconds } else { 0 },
            text: Text::pack(text),
        }
    }

    /// The strings, borrowed: what the codec encodes from.
    pub(crate) fn text_parts(&self) -> TextParts<'_> {
        let t = &self.text;
        TextParts {
            target_host_name: t.required(0),
            app_notification_id: t.required(1),
            group_name: t.part(2),
            raw_content: t.part(3),
            title: t.part(4),
            body: t.part(5),
            fallback_title: t.part(6),
            fallback_body: t.part(7),
        }
    }

    // The accessors below borrow from the notification's one allocation: none allocates or
    // copies, and each is O(1). An empty string reads as `Some("")`, never as `None`.

    /// `targetHostName`.
    pub fn target_host_name(&self) -> &str {
        self.text.required(0)
    }

    /// `appNotificationId`: unique among the live notifications of a feed.
    pub fn app_notification_id(&self) -> &str {
        self.text.required(1)
    }

    /// `groupName`, `None` when the notification was posted without one.
    pub fn group_name(&self) -> Option<&str> {
        self.text.part(2)
    }

    /// `payload`, borrowed; `Payload::from(n.payload())` copies it.
    pub fn payload(&self) -> PayloadRef<'_> {
        PayloadRef {
            raw_content: self.text.part(3),
            visual_content: self.text.part(4).map(|title| VisualContentRef { title, body: self.text.part(5) }),
        }
    }

    /// `fallbackPolicy` with its delay, borrowed; `None` when the notification has none.
    pub fn fallback_policy(&self) -> Option<FallbackPolicyRef<'_>> {
        self.text.part(6).map(|title| FallbackPolicyRef {
            fallback_delay_seconds: self.fallback_delay_seconds,
            visual_content: VisualContentRef { title, body: self.text.part(7) },
        })
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
        let content = self.payload();
        if let Some(raw) = content.raw_content {
            payload.insert("rawContent".into(), Value::String(raw.to_owned()));
        }
        if let Some(visual) = content.visual_content {
            payload.insert("visualContent".into(), visual_json(visual));
        }
        let mut out = Map::new();
        out.insert("id".into(), Value::String(self.id.to_string()));
        out.insert("targetHostName".into(), Value::String(self.target_host_name().to_owned()));
        out.insert("appNotificationId".into(), Value::String(self.app_notification_id().to_owned()));
        out.insert("displayTimeToLive".into(), json!(self.remaining_display_seconds(now)));
        out.insert("expirationDateTime".into(), Value::String(format_timestamp(self.expiration)));
        out.insert("groupName".into(), self.group_name().map(|g| Value::String(g.to_owned())).unwrap_or(Value::Null));
        out.insert("priority".into(), Value::String(self.priority.as_str().into()));
        out.insert("payload".into(), Value::Object(payload));
        out.insert(
            "targetPolicy".into(),
            json!({ "platformTypes": self.platforms.iter().map(Platform::as_str).collect::<Vec<_>>() }),
        );
        if let Some(fallback) = self.fallback_policy() {
            out.insert(
                "fallbackPolicy".into(),
                json!({ "endpointFallback": {
                    "platformTypes": ["iOS"],
                    "fallbackDelayInSeconds": fallback.fallback_delay_seconds,
                    "visualContent": visual_json(fallback.visual_content),
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

impl fmt::Debug for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notification")
            .field("id", &self.id)
            .field("target_host_name", &self.target_host_name())
            .field("app_notification_id", &self.app_notification_id())
            .field("group_name", &self.group_name())
            .field("payload", &self.payload())
            .field("platforms", &self.platforms)
            .field("priority", &self.priority)
            .field("display_time_to_live", &self.display_time_to_live)
            .field("expiration", &self.expiration)
            .field("fallback_policy", &self.fallback_policy())
            .field("created", &self.created)
            .field("last_modified", &self.last_modified)
            .field("read_state", &self.read_state)
            .field("user_action_state", &self.user_action_state)
            .finish()
    }
}

fn visual_json(visual: VisualContentRef<'_>) -> Value {
    let mut v = Map::new();
    v.insert("title".into(), Value::String(visual.title.to_owned()));
    if let Some(body) = visual.body {
        v.insert("body".into(), Value::String(body.to_owned()));
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
    fn each_string_reads_back_as_appended_and_an_empty_one_is_not_an_absent_one() {
        let now = Timestamp::UNIX_EPOCH;
        let mut new = NewNotification::visual("héllo.example", "a-1", "").with_group("");
        if let Some(visual) = new.payload.visual_content.as_mut() {
            visual.body = Some("body ✓".into());
        }
        new.fallback_policy = Some(FallbackPolicy {
            fallback_delay_seconds: 90,
            visual_content: VisualContent { title: "fb".into(), body: None },
        });
        let n = Notification::from_new(NotificationId::new_random(), new.clone(), now, now);
        assert_eq!(n.target_host_name(), "héllo.example");
        assert_eq!(n.app_notification_id(), "a-1");
        assert_eq!(n.group_name(), Some(""));
        assert_eq!(n.payload(), new.payload);
        assert_eq!(n.payload().raw_content, None);
        assert_eq!(n.payload().visual_content, Some(VisualContentRef { title: "", body: Some("body ✓") }));
        assert_eq!(n.fallback_policy(), new.fallback_policy.as_ref().map(FallbackPolicyRef::from));
        assert_eq!(Payload::from(n.payload()), new.payload);

        let raw = Notification::from_new(NotificationId::new_random(), NewNotification::raw("h", "", "r"), now, now);
        assert_eq!((raw.app_notification_id(), raw.group_name()), ("", None));
        assert_eq!(raw.payload(), PayloadRef { raw_content: Some("r"), visual_content: None });
        assert_eq!(raw.fallback_policy(), None);
        let shown = format!("{raw:?}");
        assert!(shown.contains(r#"target_host_name: "h""#) && shown.contains(r#"raw_content: Some("r")"#), "{shown}");
    }

    #[test]
    fn a_body_without_its_title_is_dropped_when_the_strings_are_packed() {
        let parts = TextParts {
            target_host_name: "h",
            app_notification_id: "a",
            body: Some("b"),
            fallback_body: Some("fb"),
            ..TextParts::default()
        };
        let bare = TextParts { body: None, fallback_body: None, ..parts };
        assert!(Text::pack(&parts) == Text::pack(&bare));
        assert!(
            Text::pack(&TextParts { title: Some("t"), ..parts }) != Text::pack(&TextParts { title: Some("t"), ..bare })
        );
    }

    #[test]
    fn notifications_differing_only_in_where_one_string_ends_are_not_equal() {
        let now = Timestamp::UNIX_EPOCH;
        let id = NotificationId::new_random();
        let a = Notification::from_new(id, NewNotification::visual("ab", "c", "t"), now, now);
        let b = Notification::from_new(id, NewNotification::visual("a", "bc", "t"), now, now);
        assert_ne!(a, b);
        assert_eq!(a, Notification::from_new(id, NewNotification::visual("ab", "c", "t"), now, now));
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
