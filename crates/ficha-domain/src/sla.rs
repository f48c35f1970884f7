//! Service levels of support cases, computed, never stored: a case keeps only its events
//! (created, first response, status changes, resolved, reopened), and its due times and state
//! follow from those events, the company's working calendar and `now`. Every replica holding
//! the same events computes the same answer, offline too, whatever order they arrived in.
//!
//! Targets count working minutes of a calendar (weekdays with opening hours, holidays, a time
//! zone); while a case is in a paused status ("pending on customer") its clock stops.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;

/// Working hours: per weekday (Monday first) an opening and closing time, holidays, a zone.
#[derive(Debug, Clone)]
pub struct Calendar {
    /// The zone the hours are in.
    pub tz: Tz,
    /// Monday..Sunday: open and close, or closed.
    pub days: [Option<(NaiveTime, NaiveTime)>; 7],
    /// Days closed whatever the weekday.
    pub holidays: BTreeSet<NaiveDate>,
}

impl Calendar {
    /// Monday to Friday, 9:00 to 18:00, in `tz`.
    pub fn office(tz: Tz) -> Self {
        let day = NaiveTime::from_hms_opt(9, 0, 0).zip(NaiveTime::from_hms_opt(18, 0, 0));
        Calendar {
            tz,
            days: [day, day, day, day, day, None, None],
            holidays: BTreeSet::new(),
        }
    }

    /// The working window of a local day, in UTC, if it is a working day.
    fn window(&self, day: NaiveDate) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        if self.holidays.contains(&day) {
            return None;
        }
        let (open, close) = self.days[day.weekday().num_days_from_monday() as usize]?;
        let at = |t: NaiveTime| {
            self.tz
                .from_local_datetime(&day.and_time(t))
                .earliest()
                .map(|d| d.with_timezone(&Utc))
        };
        Some((at(open)?, at(close)?))
    }

    /// Working milliseconds between two instants.
    pub fn working_ms(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
        if to <= from {
            return 0;
        }
        let mut total = 0;
        let mut day = from.with_timezone(&self.tz).date_naive();
        let last = to.with_timezone(&self.tz).date_naive();
        while day <= last {
            if let Some((open, close)) = self.window(day) {
                let (a, b) = (open.max(from), close.min(to));
                if b > a {
                    total += (b - a).num_milliseconds();
                }
            }
            let Some(next) = day.checked_add_days(Days::new(1)) else {
                break;
            };
            day = next;
        }
        total
    }

    /// The instant `ms` working milliseconds after `from` (None if the calendar never opens).
    pub fn advance(&self, from: DateTime<Utc>, mut ms: i64) -> Option<DateTime<Utc>> {
        let mut day = from.with_timezone(&self.tz).date_naive();
        // Ten years of days without a working minute means there are none.
        for _ in 0..3660 {
            if let Some((open, close)) = self.window(day) {
                let start = open.max(from);
                if close > start {
                    let room = (close - start).num_milliseconds();
                    if ms <= room {
                        return Some(start + chrono::Duration::milliseconds(ms));
                    }
                    ms -= room;
                }
            }
            day = day.checked_add_days(Days::new(1))?;
        }
        None
    }
}

/// What happened to a case, with when (ms since the epoch).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Event {
    /// Opened.
    Created,
    /// Someone answered the client for the first time.
    FirstResponse,
    /// Moved to this status.
    Status(String),
    /// Resolved.
    Resolved,
    /// Opened again after being resolved.
    Reopened,
}

/// Targets of a priority, in working minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Targets {
    /// Until the first response.
    pub first_response_min: i64,
    /// Until resolution.
    pub resolution_min: i64,
}

/// How a case stands against its targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Within target, with room.
    OnTime,
    /// Within target, less than a fifth of the time left.
    AtRisk,
    /// Past a target.
    Breached,
    /// The clock is stopped (a paused status).
    Paused,
    /// Resolved within target.
    Met,
}

/// A case's service level now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sla {
    /// The state.
    pub state: State,
    /// When the first response is due (ms), unless already given.
    pub first_response_due: Option<i64>,
    /// When resolution is due (ms); None while paused.
    pub resolution_due: Option<i64>,
}

/// The service level of a case with these events (in any order), calendar, targets and
/// paused statuses, at `now_ms`.
pub fn compute(
    events: &[(i64, Event)],
    calendar: &Calendar,
    targets: Targets,
    paused: &[&str],
    now_ms: i64,
) -> Sla {
    let mut evs = events.to_vec();
    // Time, then the event itself: a total order, so arrival order never matters.
    evs.sort();
    let utc = |ms: i64| DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
    let now = utc(now_ms);
    let Some(created) = evs
        .iter()
        .find(|(_, e)| *e == Event::Created)
        .map(|(t, _)| *t)
    else {
        return Sla {
            state: State::OnTime,
            first_response_due: None,
            resolution_due: None,
        };
    };
    let first_response = evs
        .iter()
        .find(|(_, e)| *e == Event::FirstResponse)
        .map(|(t, _)| *t);
    // The clock runs while the case is neither resolved nor in a paused status; a status
    // change never restarts the clock of a resolved case (only a reopening does).
    let (mut resolved, mut held) = (false, false);
    let mut running_since = Some(created);
    let mut used = 0i64;
    let mut resolved_at = None;
    for (t, e) in evs.iter().filter(|(t, _)| *t >= created) {
        match e {
            Event::Status(s) => held = paused.contains(&s.as_str()),
            Event::Resolved => {
                resolved = true;
                resolved_at = Some(*t);
            }
            Event::Reopened => {
                resolved = false;
                resolved_at = None;
            }
            Event::Created | Event::FirstResponse => {}
        }
        let runs = !resolved && !held;
        match (running_since, runs) {
            (Some(since), false) => {
                used += calendar.working_ms(utc(since), utc(*t));
                running_since = None;
            }
            (None, true) => running_since = Some(*t),
            _ => {}
        }
    }
    let target = targets.resolution_min * 60_000;
    let resolution_due = running_since.and_then(|since| {
        let left = (target - used).max(0);
        calendar
            .advance(utc(since), left)
            .map(|d| d.timestamp_millis())
    });
    let first_response_due = match first_response {
        Some(_) => None,
        None => calendar
            .advance(utc(created), targets.first_response_min * 60_000)
            .map(|d| d.timestamp_millis()),
    };
    let late_response = match first_response {
        Some(t) => calendar.working_ms(utc(created), utc(t)) > targets.first_response_min * 60_000,
        None => first_response_due.is_some_and(|d| now_ms > d),
    };
    let spent = used + running_since.map_or(0, |since| calendar.working_ms(utc(since), now));
    let state = if resolved_at.is_some() {
        if used > target || late_response {
            State::Breached
        } else {
            State::Met
        }
    } else if late_response || spent > target {
        State::Breached
    } else if running_since.is_none() {
        State::Paused
    } else if (target - spent) * 5 < target {
        State::AtRisk
    } else {
        State::OnTime
    };
    Sla {
        state,
        first_response_due,
        resolution_due,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};

    /// Monday 2026-11-30, 09:00 in Madrid.
    fn monday_9() -> i64 {
        chrono_tz::Europe::Madrid
            .with_ymd_and_hms(2026, 11, 30, 9, 0, 0)
            .single()
            .map(|d| d.timestamp_millis())
            .unwrap_or_default()
    }

    const H: i64 = 3_600_000;
    const T: Targets = Targets {
        first_response_min: 120,
        resolution_min: 16 * 60,
    };

    #[test]
    fn deadlines_count_working_hours_skip_weekends_and_holidays_and_stop_while_paused() {
        let mut cal = Calendar::office(chrono_tz::Europe::Madrid);
        let c = monday_9();
        let sla = compute(&[(c, Event::Created)], &cal, T, &["pending_customer"], c);
        assert_eq!(sla.first_response_due, Some(c + 2 * H));
        // 16 working hours from Monday 9:00: 9 on Monday, 7 on Tuesday.
        assert_eq!(sla.resolution_due, Some(c + 24 * H + 7 * H));
        assert_eq!(sla.state, State::OnTime);
        cal.holidays
            .insert(NaiveDate::from_ymd_opt(2026, 12, 1).unwrap_or_default());
        let held = compute(&[(c, Event::Created)], &cal, T, &[], c);
        assert_eq!(
            held.resolution_due,
            Some(c + 48 * H + 7 * H),
            "the holiday is skipped"
        );
        // Paused for the whole of Monday afternoon: due half a day later.
        let events = [
            (c, Event::Created),
            (c + H, Event::FirstResponse),
            (c + 4 * H, Event::Status("pending_customer".into())),
            (c + 24 * H, Event::Status("in_progress".into())),
        ];
        let paused = compute(&events, &cal, T, &["pending_customer"], c + 25 * H);
        assert_eq!(paused.resolution_due, Some(c + 48 * H + 24 * H + 3 * H));
        let while_paused = compute(&events[..3], &cal, T, &["pending_customer"], c + 5 * H);
        assert_eq!(
            (while_paused.state, while_paused.resolution_due),
            (State::Paused, None)
        );
        // Late: breached, and on Friday evening of the same week still breached.
        let late = compute(&[(c, Event::Created)], &cal, T, &[], c + 3 * H);
        assert_eq!(
            late.state,
            State::Breached,
            "no first response in two hours"
        );
        let answered = [(c, Event::Created), (c + H, Event::FirstResponse)];
        assert_eq!(
            compute(&answered, &cal, T, &[], c + 3 * H).state,
            State::OnTime
        );
        let near = compute(&answered, &cal, T, &[], c + 48 * H + 6 * H);
        assert_eq!(near.state, State::AtRisk);
    }

    #[test]
    fn any_order_of_arrival_gives_the_same_answer_and_a_pause_never_brings_a_deadline_forward() {
        let cal = Calendar::office(chrono_tz::America::Mexico_City);
        let statuses = ["new", "in_progress", "pending_customer", "resolved"];
        for seed in 0..300u64 {
            let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
            let c = monday_9() + rng.random_range(0..7 * 24) * H;
            let mut events = vec![(c, Event::Created)];
            let mut t = c;
            for _ in 0..rng.random_range(0..8) {
                t += rng.random_range(0..30) * H / 2;
                let e = match rng.random_range(0..5) {
                    0 => Event::FirstResponse,
                    1 => Event::Resolved,
                    2 => Event::Reopened,
                    _ => Event::Status(statuses[rng.random_range(0..statuses.len())].into()),
                };
                events.push((t, e));
            }
            let now = t + rng.random_range(0..48) * H;
            let want = compute(&events, &cal, T, &["pending_customer"], now);
            for _ in 0..10 {
                let mut shuffled = events.clone();
                shuffled.shuffle(&mut rng);
                assert_eq!(
                    compute(&shuffled, &cal, T, &["pending_customer"], now),
                    want,
                    "seed {seed}"
                );
            }
            // The same case with a pause inserted: its deadline is never earlier.
            let unpaused: Vec<(i64, Event)> = events
                .iter()
                .filter(|(_, e)| !matches!(e, Event::Status(s) if s == "pending_customer"))
                .cloned()
                .collect();
            let base = compute(&unpaused, &cal, T, &["pending_customer"], now);
            let p = c + rng.random_range(1..40) * H / 2;
            let mut with_pause = unpaused.clone();
            with_pause.push((p, Event::Status("pending_customer".into())));
            with_pause.push((
                p + rng.random_range(1..20) * H / 2,
                Event::Status("in_progress".into()),
            ));
            let paused = compute(&with_pause, &cal, T, &["pending_customer"], now);
            if let (Some(a), Some(b)) = (base.resolution_due, paused.resolution_due) {
                assert!(
                    b >= a,
                    "seed {seed}: a pause brought the deadline from {a} to {b}"
                );
            }
        }
    }
}
