//! The endpoints: notifications of a feed (`/me/notifications…`) and subscriptions
//! (`/subscriptions…`).

use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::contract::parse_new_notification;
use crate::handler::encoding::decode_body;
use crate::handler::errors::HandlerError;
use crate::handler::odata::{QueryOptions, group_filter_value, link, notifications_context};
use crate::handler::{Caller, FeedContext, Handler, Request, Response, Subscription};
use crate::model::{NotificationId, ReadState, UserActionState, format_timestamp};
use crate::store::{Cursor, ListQuery, StateUpdate};

/// The longest user id a subscription may name, in bytes (the feed key holds it and the host
/// name).
const MAX_USER_ID_BYTES: usize = 128;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StatePatch {
    read_state: Option<String>,
    user_action_state: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewSubscription {
    user_id: String,
    expiration_date_time: Option<String>,
}

/// Parses a JSON body with serde, naming the offending field on failure.
fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, HandlerError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        HandlerError::BadRequest {
            field: if path == "." { "the body".into() } else { path },
            problem: e.into_inner().to_string(),
        }
    })
}

fn parse_id(id: &str) -> Result<NotificationId, HandlerError> {
    id.parse().map_err(|_| HandlerError::NotFound { what: "notification", id: id.chars().take(64).collect() })
}

impl Handler {
    /// The body, checked for `Content-Type` and decoded per `Content-Encoding` under the size
    /// limit. Takes it out of the request.
    fn json_body(&self, request: &mut Request) -> Result<Vec<u8>, HandlerError> {
        if let Some(content_type) = request.header("content-type") {
            let media = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            if media != "application/json" && !media.ends_with("+json") {
                return Err(HandlerError::UnsupportedContentType {
                    content_type: content_type.chars().take(64).collect(),
                });
            }
        }
        let encoding = request.header("content-encoding").map(str::to_owned);
        decode_body(encoding.as_deref(), std::mem::take(&mut request.body), self.max_request_bytes())
    }

    pub(crate) fn post_notification(
        &self,
        request: &mut Request,
        ctx: &FeedContext,
        now: Timestamp,
    ) -> Result<Response, HandlerError> {
        let body = self.json_body(request)?;
        let new = parse_new_notification(&body, &self.limits, now)?;
        if !new.target_host_name.eq_ignore_ascii_case(&ctx.subscription.app_host_name) {
            return Err(HandlerError::Forbidden {
                reason: format!(
                    "targetHostName {:?} is not the host name of the X-UNS-ID subscription's app",
                    new.target_host_name.chars().take(64).collect::<String>()
                ),
            });
        }
        let stored = self.store.append(&ctx.feed, new)?;
        self.signals.bump(ctx.feed.as_str());
        let mut body = stored.to_graph_json(now);
        if let Value::Object(map) = &mut body {
            map.insert(
                "@odata.context".into(),
                Value::String(format!("{}/$entity", notifications_context(&ctx.subscription.user_id))),
            );
        }
        let mut response = Response::json(201, &body);
        response.set_header("Location", format!("{}/me/notifications/{}", request.base_url(), stored.id));
        Ok(response)
    }

    pub(crate) fn list_notifications(
        &self,
        request: &Request,
        ctx: &FeedContext,
        now: Timestamp,
    ) -> Result<Response, HandlerError> {
        let query = QueryOptions::parse(request.query());
        query.only(&["$top", "$skiptoken", "$filter"])?;
        let top = query.top(ListQuery::default().limit)?;
        let group = query.group_filter()?;
        let cursor = query
            .get("$skiptoken")
            .map(|t| {
                t.parse::<Cursor>().map_err(|_| HandlerError::BadRequest {
                    field: "$skiptoken".into(),
                    problem: format!(
                        "{:?} is not a skip token issued by this server",
                        t.chars().take(64).collect::<String>()
                    ),
                })
            })
            .transpose()?;
        let page = self
            .store
            .list(&ctx.feed, &ListQuery { group: group.clone(), limit: top, cursor, ..ListQuery::default() })?;
        let mut body = Map::new();
        body.insert("@odata.context".into(), Value::String(notifications_context(&ctx.subscription.user_id)));
        body.insert("value".into(), Value::Array(page.items.iter().map(|n| n.to_graph_json(now)).collect()));
        if let Some(next) = page.next {
            let mut options = vec![("$top", top.to_string())];
            if let Some(group) = &group {
                options.push(("$filter", group_filter_value(group)));
            }
            options.push(("$skiptoken", next.to_string()));
            body.insert(
                "@odata.nextLink".into(),
                Value::String(link(&request.base_url(), "/me/notifications", &options)),
            );
        }
        Ok(Response::json(200, &Value::Object(body)))
    }

    pub(crate) fn get_notification(
        &self,
        ctx: &FeedContext,
        id: &str,
        now: Timestamp,
    ) -> Result<Response, HandlerError> {
        let notification = self
            .store
            .get(&ctx.feed, parse_id(id)?)?
            .ok_or_else(|| HandlerError::NotFound { what: "notification", id: id.to_owned() })?;
        Ok(Response::json(200, &self.entity(ctx, notification.to_graph_json(now))))
    }

    pub(crate) fn patch_notification(
        &self,
        request: &mut Request,
        ctx: &FeedContext,
        id: &str,
        now: Timestamp,
    ) -> Result<Response, HandlerError> {
        let notification_id = parse_id(id)?;
        let patch: StatePatch = parse_json(&self.json_body(request)?)?;
        let read_state = patch
            .read_state
            .map(|s| {
                ReadState::parse_any_case(&s).ok_or_else(|| HandlerError::BadRequest {
                    field: "readState".into(),
                    problem: format!("must be Read or Unread, not {s:?}"),
                })
            })
            .transpose()?;
        let user_action_state = patch
            .user_action_state
            .map(|s| {
                UserActionState::parse_any_case(&s).ok_or_else(|| HandlerError::BadRequest {
                    field: "userActionState".into(),
                    problem: format!("must be NoInteraction, Activated, Dismissed or Snoozed, not {s:?}"),
                })
            })
            .transpose()?;
        if read_state.is_none() && user_action_state.is_none() {
            return Err(HandlerError::BadRequest {
                field: "the body".into(),
                problem: "must set readState or userActionState".into(),
            });
        }
        let updated = self
            .store
            .update_state(&ctx.feed, notification_id, StateUpdate { read_state, user_action_state })?
            .ok_or_else(|| HandlerError::NotFound { what: "notification", id: id.to_owned() })?;
        self.signals.bump(ctx.feed.as_str());
        Ok(Response::json(200, &self.entity(ctx, updated.to_graph_json(now))))
    }

    pub(crate) fn delete_notification(&self, ctx: &FeedContext, id: &str) -> Result<Response, HandlerError> {
        if !self.store.delete(&ctx.feed, parse_id(id)?)? {
            return Err(HandlerError::NotFound { what: "notification", id: id.to_owned() });
        }
        self.signals.bump(ctx.feed.as_str());
        Ok(Response::empty(204))
    }

    pub(crate) fn delete_group(&self, request: &Request, ctx: &FeedContext) -> Result<Response, HandlerError> {
        let query = QueryOptions::parse(request.query());
        query.only(&["groupName"])?;
        let group = query.get("groupName").filter(|g| !g.is_empty()).ok_or_else(|| HandlerError::BadRequest {
            field: "groupName".into(),
            problem: "is required: DELETE /me/notifications?groupName=<group> deletes a whole group".into(),
        })?;
        let deleted = self.store.delete_group(&ctx.feed, group)?;
        if deleted > 0 {
            self.signals.bump(ctx.feed.as_str());
        }
        Ok(Response::json(200, &json!({ "groupName": group, "deletedCount": deleted })))
    }

    fn entity(&self, ctx: &FeedContext, mut body: Value) -> Value {
        if let Value::Object(map) = &mut body {
            map.insert(
                "@odata.context".into(),
                Value::String(format!("{}/$entity", notifications_context(&ctx.subscription.user_id))),
            );
        }
        body
    }

    pub(crate) fn create_subscription(
        &self,
        request: &mut Request,
        caller: &Caller,
        now: Timestamp,
    ) -> Result<Response, HandlerError> {
        self.throttle.admit(&caller.app_id, None, now)?;
        let new: NewSubscription = parse_json(&self.json_body(request)?)?;
        let user = new.user_id;
        if user.is_empty() || user.len() > MAX_USER_ID_BYTES || user.chars().any(|c| c == '/' || c.is_control()) {
            return Err(HandlerError::BadRequest {
                field: "userId".into(),
                problem: format!("must be 1 to {MAX_USER_ID_BYTES} bytes with no '/' and no control characters"),
            });
        }
        let limits = &self.config.subscriptions;
        let latest = now + SignedDuration::from_hours(i64::from(limits.max_lifetime_hours));
        let expiration = match new.expiration_date_time {
            None => now + SignedDuration::from_hours(i64::from(limits.default_lifetime_hours)),
            Some(text) => {
                let t: Timestamp = text.parse().map_err(|e| HandlerError::BadRequest {
                    field: "expirationDateTime".into(),
                    problem: format!("is not an RFC 3339 date-time with offset: {e}"),
                })?;
                if t <= now || t > latest {
                    return Err(HandlerError::BadRequest {
                        field: "expirationDateTime".into(),
                        problem: format!("must be after now and at most {} hours ahead", limits.max_lifetime_hours),
                    });
                }
                t
            }
        };
        let subscription = Subscription {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: user,
            app_id: caller.app_id.clone(),
            app_host_name: caller.host_name.clone(),
            expiration_date_time: expiration,
        };
        self.subscriptions.insert(subscription.clone(), now, limits.max_per_app)?;
        let mut response = Response::json(201, &subscription_json(&subscription));
        response.set_header("Location", format!("{}/subscriptions/{}", request.base_url(), subscription.id));
        Ok(response)
    }

    pub(crate) fn subscription(
        &self,
        request: &Request,
        caller: &Caller,
        id: &str,
        now: Timestamp,
    ) -> Result<Response, HandlerError> {
        self.throttle.admit(&caller.app_id, None, now)?;
        let not_found = || HandlerError::NotFound { what: "subscription", id: id.chars().take(64).collect() };
        if request.method == "DELETE" {
            return if self.subscriptions.remove(id, &caller.app_id, now)? {
                Ok(Response::empty(204))
            } else {
                Err(not_found())
            };
        }
        let subscription =
            self.subscriptions.get(id, now).filter(|s| s.app_id == caller.app_id).ok_or_else(not_found)?;
        Ok(Response::json(200, &subscription_json(&subscription)))
    }
}

fn subscription_json(s: &Subscription) -> Value {
    json!({
        "id": s.id,
        "userId": s.user_id,
        "appHostName": s.app_host_name,
        "expirationDateTime": format_timestamp(s.expiration_date_time),
    })
}
