//! The orchestrator's own settings (`[service]`, `MICROS__SERVICE__…`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use micros_platform::config::Validate;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrchestratorSettings {
    /// The data-owning services lifecycle calls go to, in order; the catalog is first,
    /// and is restored before the others.
    pub services: Vec<String>,
    /// Plans touching more sites than this need a second principal's approval. Keep it
    /// at most the services' `lifecycle.free_deletions_per_hour`: only approved
    /// operations carry a grant, the rest share each service's free rate.
    pub approval_threshold_sites: u32,
    /// How long a plan may be applied after it was made.
    #[serde(with = "humantime_serde")]
    pub plan_ttl: Duration,
    /// Sites in the first (canary) wave.
    pub canary: u32,
    /// Each later wave is this many times the previous one…
    pub wave_growth: u32,
    /// …up to this many targets.
    pub max_wave: u32,
    /// Targets restored per wave of lifecycle calls. A restore has no canary to learn
    /// from and each wave costs a round of calls and verification, so its waves are
    /// larger than a deletion's: the incident's 883 sites come back in four.
    pub restore_batch: u32,
    /// Inputs a plan resolves, and targets it describes, per call to each service: a
    /// plan over the incident's 883 sites makes a handful of calls to each, each
    /// bounded in size and in how long it holds a service's database.
    pub plan_batch: u32,
    /// The longest wait between retries of a service that is down.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// How often the purge reaper looks for expired sites; `0s` turns it off.
    #[serde(with = "humantime_serde")]
    pub reaper_interval: Duration,
    /// How long a runner's claim on an operation lasts without renewal (it renews every
    /// third of this): the longest another replica waits before taking over the
    /// operations of a runner that died.
    #[serde(with = "humantime_serde")]
    pub runner_lease: Duration,
    /// How often a random sample of active sites is drilled on scratch copies; `0s`
    /// (the default for `micros up`) turns scheduled drills off.
    #[serde(with = "humantime_serde")]
    pub drill_interval: Duration,
    /// How many sites each scheduled drill copies and drills.
    pub drill_sample: u32,
    /// This replica's name among the runners; empty means the host name (`HOSTNAME`,
    /// the pod's name in Kubernetes), so a restarted process takes its operations back
    /// at once. Replicas must differ.
    pub runner_id: String,
}

impl Default for OrchestratorSettings {
    fn default() -> Self {
        Self {
            services: ["catalog", "identity", "license", "media", "product-data"]
                .map(str::to_owned)
                .to_vec(),
            approval_threshold_sites: 5,
            plan_ttl: Duration::from_secs(3600),
            canary: 1,
            wave_growth: 2,
            max_wave: 100,
            restore_batch: 250,
            plan_batch: 250,
            max_backoff: Duration::from_secs(5),
            reaper_interval: Duration::from_secs(3600),
            runner_lease: Duration::from_secs(10),
            drill_interval: Duration::ZERO,
            drill_sample: 5,
            runner_id: String::new(),
        }
    }
}

impl Validate for OrchestratorSettings {
    fn validate(&self) -> Result<(), String> {
        if self.services.first().map(String::as_str) != Some("catalog") {
            return Err("services: the catalog must come first".to_owned());
        }
        if self.canary == 0 || self.max_wave == 0 || self.restore_batch == 0 || self.plan_batch == 0
        {
            return Err(
                "canary, max_wave, restore_batch and plan_batch must be at least 1".to_owned(),
            );
        }
        if self.wave_growth < 1 {
            return Err("wave_growth must be at least 1".to_owned());
        }
        if self.drill_sample == 0 {
            return Err("drill_sample must be at least 1".to_owned());
        }
        if self.runner_lease < Duration::from_millis(300) {
            return Err("runner_lease must be at least 300ms".to_owned());
        }
        Ok(())
    }
}

impl OrchestratorSettings {
    /// This replica's runner name (see [`Self::runner_id`]).
    pub fn runner(&self) -> String {
        if !self.runner_id.is_empty() {
            return self.runner_id.clone();
        }
        std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "orchestrator".to_owned())
    }

    /// The wave of each of `count` targets: canary first, then growing waves.
    pub fn waves(&self, count: usize) -> Vec<i64> {
        self.waves_after(count, self.canary as usize)
    }

    /// The waves of `count` targets whose first `canary` form the canary.
    pub fn waves_after(&self, count: usize, canary: usize) -> Vec<i64> {
        let mut waves = Vec::with_capacity(count);
        let mut size = canary.max(1);
        let mut wave = 0i64;
        while waves.len() < count {
            let take = size.min(count - waves.len());
            waves.extend(std::iter::repeat_n(wave, take));
            wave += 1;
            size = (size * self.wave_growth as usize)
                .min(self.max_wave as usize)
                .max(1);
        }
        waves
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waves_grow_from_a_canary() {
        let settings = OrchestratorSettings {
            max_wave: 8,
            ..OrchestratorSettings::default()
        };
        let waves = settings.waves(40);
        let sizes: Vec<usize> = (0..=*waves.last().unwrap())
            .map(|wave| waves.iter().filter(|w| **w == wave).count())
            .collect();
        assert_eq!(sizes, vec![1, 2, 4, 8, 8, 8, 8, 1]);
        assert!(settings.waves(0).is_empty());
    }
}
