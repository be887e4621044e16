//! Active health checks (SPEC 12 `[routes.health_check]`): every `interval`, `GET path` to
//! each endpoint of a pool through the pool's own client, within `timeout`; a 2xx answer
//! passes. The checks run while the pool lives: a reload that replaces it ends them.

use std::sync::Arc;

use http::header::{HOST, USER_AGENT};
use http::{HeaderValue, Request};
use http_body_util::{BodyExt, Limited};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

use super::body::RequestBody;
use super::client::{UpstreamClient, exchange};
use super::dispatch::endpoint_uri;
use super::pool::UpstreamPool;

/// A health answer is read whole (so its connection can be reused) up to this size.
const MAX_ANSWER: usize = 64 * 1024;

impl UpstreamPool {
    /// Starts this pool's checks, if it has a health check; they stop when the pool is dropped.
    pub fn start_health_checks(self: &Arc<Self>, plain: &UpstreamClient) {
        let Some(interval) = self.health_check.as_ref().map(|c| c.interval) else {
            return;
        };
        let (pool, plain) = (Arc::downgrade(self), plain.clone());
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(pool) = pool.upgrade() else { return };
                let mut round = JoinSet::new();
                for i in 0..pool.endpoints.len() {
                    let (pool, plain) = (pool.clone(), plain.clone());
                    round.spawn(async move {
                        let passed = pool.check(&plain, i).await;
                        pool.checked(i, passed);
                    });
                }
                // The pool is held only for one round, bounded by the check's timeout.
                drop(pool);
                round.join_all().await;
            }
        });
    }

    /// One check of endpoint `i`: whether it answered 2xx within the timeout.
    async fn check(&self, plain: &UpstreamClient, i: usize) -> bool {
        let Some(check) = &self.health_check else {
            return true;
        };
        let endpoint = &self.endpoints[i].endpoint;
        let (Ok(path), Ok(host)) = (
            check.path.parse(),
            HeaderValue::from_str(endpoint.authority.as_str()),
        ) else {
            return false;
        };
        let Ok(uri) = endpoint_uri(endpoint, path) else {
            return false;
        };
        let mut request = Request::get(uri).body(RequestBody::empty()).expect("a valid URI");
        request.headers_mut().insert(HOST, host);
        let agent = HeaderValue::from_static("portcullis-health-check");
        request.headers_mut().insert(USER_AGENT, agent);
        let deadline = Instant::now() + check.timeout;
        let answer = match &self.tls {
            Some(client) => exchange(client, request, deadline).await,
            None => plain.send(request, deadline).await,
        };
        let Ok(response) = answer else {
            return false;
        };
        let passed = response.status().is_success();
        let read = Limited::new(response.into_body(), MAX_ANSWER).collect();
        passed
            && tokio::time::timeout_at(deadline, read)
                .await
                .is_ok_and(|body| body.is_ok())
    }
}
