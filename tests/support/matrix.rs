//! A gateway in front of one recording upstream per route, for tests that check which upstream
//! (if any) a tagged request reached and what it saw there.

use super::config::route;
use super::recorder::{Recorded, Recorder, Responder};
use super::{Gateway, Setup};

pub struct Bench {
    pub gateway: Gateway,
    /// Route name and its upstream, in config order.
    pub upstreams: Vec<(&'static str, Recorder)>,
}

impl Bench {
    /// One route per `(name, path, settings)` (settings: TOML lines, `auth` included), each to
    /// its own recorder answering with `reply`.
    pub async fn start(routes: &[(&'static str, &str, &str)], reply: impl Responder + Copy) -> Bench {
        let mut upstreams = Vec::new();
        let mut config = String::new();
        for (name, path, settings) in routes {
            let recorder = Recorder::start(reply).await;
            config += &route(name, path, recorder.addr, settings);
            upstreams.push((*name, recorder));
        }
        let gateway = Gateway::start(Setup::routes(config)).await;
        Bench { gateway, upstreams }
    }

    /// Every request carrying `X-Case: tag` that reached an upstream, with that upstream's route.
    pub fn reached(&self, tag: &str) -> Vec<(&'static str, Recorded)> {
        let of = |(name, recorder): &(&'static str, Recorder)| {
            recorder
                .case(tag)
                .into_iter()
                .map(|seen| (*name, seen))
                .collect::<Vec<_>>()
        };
        self.upstreams.iter().flat_map(of).collect()
    }
}
