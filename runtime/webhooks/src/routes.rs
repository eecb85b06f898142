//! URLs named for one event by whoever publishes it, on top of the account's subscriptions: an
//! inbound SMS goes to its number's messaging profile's `callback_url` (then `callback_url2`),
//! an outbound SMS's status to the message's `custom_callback_url`.
//!
//! The publisher calls [`crate::Webhooks::route_event`] before it publishes; the outbox writer
//! takes the route when the event reaches it and stores one delivery per URL, chained by the
//! route's `chain` (deliveries of one chain to one URL go strictly in order, as a call's do).
//! A route whose event never reaches the writer (the bus's tap overflowed and dropped it) is
//! forgotten after [`ROUTE_TTL`]; at most [`MAX_ROUTES`] wait at once (the oldest go first).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use uuid::Uuid;

/// How long a route waits for its event.
pub const ROUTE_TTL: Duration = Duration::from_secs(600);
/// Routes waiting at once.
pub const MAX_ROUTES: usize = 100_000;

/// Where one event goes besides the subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Each URL with its fallback, tried when it fails.
    pub urls: Vec<(String, Option<String>)>,
    /// Deliveries with the same chain go in order per URL (`sms:<message uuid>`).
    pub chain: Option<String>,
}

/// The routes by event, and their events oldest first (with when each was added).
type Table = (HashMap<Uuid, Route>, VecDeque<(Instant, Uuid)>);

#[derive(Debug, Default)]
pub(crate) struct Routes {
    inner: Mutex<Table>,
}

impl Routes {
    pub(crate) fn insert(&self, event: Uuid, route: Route) {
        let now = Instant::now();
        let mut guard = self.inner.lock();
        let (routes, order) = &mut *guard;
        while let Some((at, id)) = order.front().copied() {
            if now.duration_since(at) < ROUTE_TTL && routes.len() < MAX_ROUTES {
                break;
            }
            order.pop_front();
            routes.remove(&id);
        }
        routes.insert(event, route);
        order.push_back((now, event));
    }

    pub(crate) fn take(&self, event: Uuid) -> Option<Route> {
        // Its place in `order` goes when it reaches the front (or is overtaken by time).
        self.inner.lock().0.remove(&event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_is_taken_once() {
        let routes = Routes::default();
        let id = Uuid::new_v4();
        let route = Route { urls: vec![("https://a.example/".into(), None)], chain: Some("sms:1".into()) };
        routes.insert(id, route.clone());
        assert_eq!(routes.take(id), Some(route));
        assert_eq!(routes.take(id), None);
        assert_eq!(routes.take(Uuid::new_v4()), None);
    }
}
