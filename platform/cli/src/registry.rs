//! Every service this binary links. A new service adds one line here.

use micros_platform::service::{ServiceDescriptor, ServiceEntry};

pub fn all() -> Vec<ServiceEntry> {
    vec![
        ServiceEntry::of::<micros_catalog::Catalog>(),
        ServiceEntry::of::<micros_identity::Identity>(),
        ServiceEntry::of::<micros_license::License>(),
        ServiceEntry::of::<micros_media::Media>(),
        ServiceEntry::of::<micros_product_data::ProductData>(),
        ServiceEntry::of::<micros_orchestrator::Orchestrator>(),
    ]
}

/// The deployment facts `service` configures itself from, taken from every descriptor
/// this binary links (see `ServiceDescriptor::deployed_settings`).
pub fn deployed_config(service: &ServiceDescriptor) -> anyhow::Result<Vec<(&'static str, String)>> {
    let services: Vec<ServiceDescriptor> =
        all().into_iter().map(|entry| entry.descriptor).collect();
    service
        .deployed_config(&services)
        .map_err(|error| anyhow::anyhow!("service `{}`: {error}", service.name))
}

pub fn names() -> Vec<&'static str> {
    all().iter().map(|entry| entry.descriptor.name).collect()
}

pub fn find(name: &str) -> anyhow::Result<ServiceEntry> {
    all()
        .into_iter()
        .find(|entry| entry.descriptor.name == name)
        .ok_or_else(|| anyhow::anyhow!("no service is named `{name}`; try `micros services`"))
}

/// Services in an order where each comes after those it depends on.
pub fn in_start_order() -> anyhow::Result<Vec<ServiceEntry>> {
    let mut pending = all();
    let mut ordered: Vec<ServiceEntry> = Vec::new();
    while !pending.is_empty() {
        let ready = pending.iter().position(|entry| {
            entry.descriptor.depends_on.iter().all(|dependency| {
                ordered
                    .iter()
                    .any(|done| done.descriptor.name == *dependency)
            })
        });
        match ready {
            Some(index) => ordered.push(pending.remove(index)),
            None => anyhow::bail!(
                "service dependencies form a cycle or name a missing service among: {}",
                pending
                    .iter()
                    .map(|entry| entry.descriptor.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
    Ok(ordered)
}
