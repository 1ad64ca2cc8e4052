//! Which shard database holds a site: the catalog's placement, remembered in memory
//! (a placement never changes), checked against this service's shard count. The
//! lifecycle RPCs find sites through the same lookup ([`ShardLocator`]).

use std::{
    collections::{HashMap, HashSet},
    sync::RwLock,
};

use micros_platform::{
    ids::SiteId,
    lifecycle::{Lifecycle, LifecycleError, grpc::ShardLocator, registry},
};

use crate::{
    catalog::{Catalog, PlacementAnswer},
    error::ProductDataError,
};

pub struct Placements {
    catalog: Catalog,
    shards: Vec<Lifecycle>,
    known: RwLock<HashMap<SiteId, usize>>,
}

impl Placements {
    pub fn new(catalog: Catalog, shards: Vec<Lifecycle>) -> Self {
        Self {
            catalog,
            shards,
            known: RwLock::new(HashMap::new()),
        }
    }

    /// The shard of one site.
    pub async fn shard_of(&self, site_id: SiteId) -> Result<usize, ProductDataError> {
        let shards = self.locate_all(&[site_id]).await?;
        Ok(shards[0])
    }

    /// The shard of each site, in the order given. Sites not seen before are asked of
    /// the catalog, many per call; a site it no longer places (purged) or never had is looked for in
    /// the shards' tenant registries, since its rows can only be where a placement once
    /// put them. A site found nowhere is SITE_NOT_FOUND, or SITE_PURGED when the catalog
    /// purged it: nothing of it is left here either.
    pub async fn locate_all(&self, sites: &[SiteId]) -> Result<Vec<usize>, ProductDataError> {
        let mut found: HashMap<SiteId, usize> = HashMap::with_capacity(sites.len());
        {
            let known = self
                .known
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            for site_id in sites {
                if let Some(shard) = known.get(site_id) {
                    found.insert(*site_id, *shard);
                }
            }
        }
        let mut seen = HashSet::new();
        let missing: Vec<SiteId> = sites
            .iter()
            .filter(|site_id| !found.contains_key(site_id) && seen.insert(**site_id))
            .copied()
            .collect();
        let answers = missing
            .iter()
            .copied()
            .zip(self.catalog.placements(&missing).await?);
        let mut unplaced: Vec<(SiteId, PlacementAnswer)> = Vec::new();
        let mut placed: Vec<(SiteId, usize)> = Vec::new();
        for (site_id, answer) in answers {
            match answer {
                PlacementAnswer::Placed { shard, shard_count } => {
                    placed.push((site_id, self.check(site_id, shard, shard_count)?));
                }
                other => unplaced.push((site_id, other)),
            }
        }
        if !unplaced.is_empty() {
            let registered = self.registered_shards(&unplaced).await?;
            for (site_id, answer) in &unplaced {
                match registered.get(site_id) {
                    Some(shard) => placed.push((*site_id, *shard)),
                    None if *answer == PlacementAnswer::Purged => {
                        return Err(LifecycleError::Purged { site_id: *site_id }.into());
                    }
                    None => return Err(ProductDataError::SiteNotFound { site_id: *site_id }),
                }
            }
        }
        if !placed.is_empty() {
            let mut known = self
                .known
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            known.extend(placed.iter().copied());
        }
        found.extend(placed);
        Ok(sites.iter().map(|site_id| found[site_id]).collect())
    }

    /// The catalog's answer as a shard index of this service, or a clear refusal when
    /// the catalog and this service disagree on how many shards there are.
    fn check(
        &self,
        site_id: SiteId,
        shard: i64,
        shard_count: i64,
    ) -> Result<usize, ProductDataError> {
        if usize::try_from(shard_count).ok() != Some(self.shards.len()) {
            tracing::error!(
                catalog = shard_count,
                configured = self.shards.len(),
                "the catalog and product-data disagree on the number of shards"
            );
            return Err(ProductDataError::ShardCountMismatch {
                catalog: shard_count,
                configured: self.shards.len(),
            });
        }
        usize::try_from(shard)
            .ok()
            .filter(|shard| *shard < self.shards.len())
            .ok_or(ProductDataError::InvalidPlacement {
                site_id,
                shard,
                shard_count,
            })
    }

    /// The shard whose tenant registry holds each of `sites`, one statement per shard.
    async fn registered_shards(
        &self,
        sites: &[(SiteId, PlacementAnswer)],
    ) -> Result<HashMap<SiteId, usize>, ProductDataError> {
        let ids: Vec<SiteId> = sites.iter().map(|(site_id, _)| *site_id).collect();
        let mut registered = HashMap::new();
        for (index, shard) in self.shards.iter().enumerate() {
            let mut connection = shard
                .store()
                .pool()
                .acquire()
                .await
                .map_err(LifecycleError::from)?;
            let rows = registry::load(shard.store(), &mut connection, &ids).await?;
            registered.extend(rows.into_keys().map(|site_id| (site_id, index)));
        }
        Ok(registered)
    }
}

#[tonic::async_trait]
impl ShardLocator for Placements {
    async fn locate(&self, sites: &[SiteId]) -> Result<Vec<usize>, LifecycleError> {
        Ok(self.locate_all(sites).await?)
    }
}
