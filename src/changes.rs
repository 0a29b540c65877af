//! Planning a page of [`FeedStore::changes`](crate::FeedStore::changes), shared by every engine
//! so that all of them page, order and issue tokens identically.
//!
//! An engine gathers the candidates of one feed (expirations after the token's time, and
//! sequenced entries after the token's sequence), and [`plan_page`] picks the page and the next
//! token. The engine then loads the upserted notifications.

use crate::model::NotificationId;
use crate::store::{ChangeToken, RemovalReason, StoreError, clamp_change_limit};

/// A change that has a place in the feed's sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sequenced<R> {
    /// A live notification last changed at this sequence; `R` is whatever the engine needs to
    /// load it (an id, a record location).
    Upsert(R),
    /// An explicit removal (delete, group delete, eviction).
    Removed(NotificationId, RemovalReason),
}

/// What the feed remembers, as of now, and what it has forgotten.
#[derive(Clone, Debug)]
pub struct FeedHorizon {
    /// The feed's latest sequence (0 for a feed that never changed).
    pub latest_sequence: u64,
    /// The highest sequence of an explicit removal the feed has forgotten (0 when none).
    pub forgotten_removals_through: u64,
    /// The latest expiration time the feed has forgotten, in Unix nanoseconds (`i64::MIN` when
    /// none).
    pub forgotten_expirations_through: i64,
}

/// One planned entry of the page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Planned<R> {
    /// Load this notification and return it as an upsert.
    Upsert(R),
    /// Return this removal.
    Removed(NotificationId, RemovalReason),
}

/// Checks a token against what the feed remembers.
///
/// # Errors
/// [`StoreError::StaleToken`] when the feed forgot a removal or expiration the token has not
/// seen, or when the token is ahead of the feed (it comes from another store or a lost state).
pub fn check_token(since: ChangeToken, horizon: &FeedHorizon) -> Result<(), StoreError> {
    if since.sequence < horizon.forgotten_removals_through
        || since.expired_through_nanos < horizon.forgotten_expirations_through
        || since.sequence > horizon.latest_sequence
    {
        return Err(StoreError::StaleToken);
    }
    Ok(())
}

/// Picks the page and the next token.
///
/// * `since`: the token the caller passed, already checked with [`check_token`]; `None` for the
///   beginning.
/// * `now_nanos`: the clock's now.
/// * `expirations`: every `(expiration, id)` with expiration in `(since.expired_through, now]`
///   (empty when `since` is `None`), in any order.
/// * `sequenced`: every `(sequence, entry)` after `since.sequence`, in any order.
///
/// Expirations come first, oldest first; when they alone exceed `limit`, the page ends at an
/// expiration time boundary (entries with the same expiration are never split) and the token's
/// sequence does not move. Then sequenced entries in sequence order.
pub fn plan_page<R>(
    since: Option<ChangeToken>,
    now_nanos: i64,
    horizon: &FeedHorizon,
    mut expirations: Vec<(i64, NotificationId)>,
    mut sequenced: Vec<(u64, Sequenced<R>)>,
    limit: usize,
) -> (Vec<Planned<R>>, ChangeToken, bool) {
    let limit = clamp_change_limit(limit);
    let start_sequence = since.map_or(0, |t| t.sequence);
    expirations.sort_unstable();
    let mut page = Vec::new();
    if expirations.len() > limit {
        let boundary = expirations[limit - 1].0;
        let taken = expirations.iter().take_while(|(t, _)| *t <= boundary).count();
        page.extend(expirations.drain(..taken).map(|(_, id)| Planned::Removed(id, RemovalReason::Expired)));
        let token = ChangeToken { sequence: start_sequence, expired_through_nanos: boundary };
        return (page, token, true);
    }
    page.extend(expirations.into_iter().map(|(_, id)| Planned::Removed(id, RemovalReason::Expired)));
    let budget = limit - page.len();
    sequenced.sort_unstable_by_key(|(seq, _)| *seq);
    let more = sequenced.len() > budget;
    let mut last_sequence = start_sequence;
    for (seq, entry) in sequenced.into_iter().take(budget) {
        last_sequence = seq;
        page.push(match entry {
            Sequenced::Upsert(r) => Planned::Upsert(r),
            Sequenced::Removed(id, reason) => Planned::Removed(id, reason),
        });
    }
    let sequence = if more { last_sequence } else { horizon.latest_sequence.max(start_sequence) };
    (page, ChangeToken { sequence, expired_through_nanos: now_nanos }, more)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> NotificationId {
        NotificationId::from_bytes([n; 16])
    }

    fn horizon(latest: u64) -> FeedHorizon {
        FeedHorizon { latest_sequence: latest, forgotten_removals_through: 0, forgotten_expirations_through: i64::MIN }
    }

    #[test]
    fn expirations_come_first_then_sequence_order() {
        let seq = vec![(7, Sequenced::Upsert("b")), (5, Sequenced::Upsert("a"))];
        let (page, token, more) = plan_page(None, 100, &horizon(7), vec![(50, id(1))], seq, 10);
        assert_eq!(
            page,
            vec![Planned::Removed(id(1), RemovalReason::Expired), Planned::Upsert("a"), Planned::Upsert("b")]
        );
        assert_eq!(token, ChangeToken { sequence: 7, expired_through_nanos: 100 });
        assert!(!more);
    }

    #[test]
    fn a_full_page_continues_after_its_last_sequence() {
        let seq = (1..=5).map(|s| (s, Sequenced::Upsert(s))).collect();
        let (page, token, more) = plan_page(None, 100, &horizon(5), vec![], seq, 2);
        assert_eq!(page, vec![Planned::Upsert(1), Planned::Upsert(2)]);
        assert_eq!(token.sequence, 2);
        assert!(more);
    }

    #[test]
    fn expirations_with_one_time_are_never_split() {
        let exp = vec![(10, id(1)), (20, id(2)), (20, id(3)), (30, id(4))];
        let since = ChangeToken { sequence: 3, expired_through_nanos: 0 };
        let (page, token, more) = plan_page::<u8>(Some(since), 100, &horizon(3), exp, vec![], 2);
        assert_eq!(page.len(), 3);
        assert_eq!(token, ChangeToken { sequence: 3, expired_through_nanos: 20 });
        assert!(more);
    }

    #[test]
    fn tokens_behind_forgotten_removals_are_stale() {
        let h = FeedHorizon { latest_sequence: 9, forgotten_removals_through: 4, forgotten_expirations_through: 50 };
        assert!(check_token(ChangeToken { sequence: 3, expired_through_nanos: 60 }, &h).is_err());
        assert!(check_token(ChangeToken { sequence: 4, expired_through_nanos: 40 }, &h).is_err());
        assert!(check_token(ChangeToken { sequence: 10, expired_through_nanos: 60 }, &h).is_err());
        assert!(check_token(ChangeToken { sequence: 4, expired_through_nanos: 50 }, &h).is_ok());
    }
}
