//! What each of an operator's inputs is (a site, an app installation, a site URL,
//! another kind of ID, or nothing) and what it belongs to, deleted sites included.
//! Never guesses: every input is classified exactly as given (checked by
//! `input::check_list`, never trimmed), then each class is looked up with one statement.

use std::collections::HashMap;

use micros_platform::{
    ids::{Kind, parse_kind},
    lifecycle::TenantState,
};
use micros_proto::catalog::v1 as pb;

use crate::{
    domain::{AppInstallation, Site, SiteUrl},
    error::CatalogError,
    store::CatalogStore,
};

/// What an input is, before anything is looked up.
#[derive(Debug, PartialEq, Eq)]
enum Class {
    Site(String),
    App(String),
    /// A site URL, normalised as sites are stored.
    Url(String),
    /// Neither: not looked up, answered with why.
    Unresolved(pb::InputKind, String),
}

fn classify(input: &str) -> Class {
    match parse_kind(input) {
        Ok((Kind::Site, _)) => Class::Site(input.to_owned()),
        Ok((Kind::AppInstallation, _)) => Class::App(input.to_owned()),
        Ok((other, _)) => {
            let name = other.name();
            let article = if name.starts_with(['a', 'e', 'i', 'o', 'u']) {
                "an"
            } else {
                "a"
            };
            Class::Unresolved(
                pb::InputKind::OtherId,
                format!("{article} {name} ID, neither a site nor an app installation"),
            )
        }
        Err(id_error) => match SiteUrl::parse("input", input) {
            Ok(url) => Class::Url(url.as_str().to_owned()),
            Err(_) => Class::Unresolved(
                pb::InputKind::Malformed,
                format!("not an ID or a site URL: {id_error}"),
            ),
        },
    }
}

/// A site's lifecycle state as the catalog's API says it (a purge under way reads as
/// purged).
pub fn site_state(state: TenantState) -> pb::SiteState {
    match state {
        TenantState::Active => pb::SiteState::Active,
        TenantState::Deleted => pb::SiteState::Deleted,
        TenantState::Purging | TenantState::Purged => pb::SiteState::Purged,
        TenantState::Absent => pb::SiteState::Unspecified,
    }
}

/// Every input's answer, in input order.
pub async fn resolve(
    store: &CatalogStore,
    inputs: &[String],
) -> Result<Vec<pb::ResolvedInput>, CatalogError> {
    let classes: Vec<Class> = inputs.iter().map(|input| classify(input)).collect();

    let pick = |wanted: fn(&Class) -> Option<&String>| -> Vec<String> {
        classes.iter().filter_map(wanted).cloned().collect()
    };
    let apps = store
        .apps_by_ids(&pick(|class| match class {
            Class::App(id) => Some(id),
            _ => None,
        }))
        .await?;
    let mut site_ids = pick(|class| match class {
        Class::Site(id) => Some(id),
        _ => None,
    });
    site_ids.extend(apps.iter().map(|(app, _)| app.site_id.to_string()));
    let mut sites: HashMap<String, Site> = store
        .sites_by_ids(&site_ids)
        .await?
        .into_iter()
        .map(|site| (site.site_id.to_string(), site))
        .collect();
    let by_url: HashMap<String, Site> = store
        .sites_by_urls(&pick(|class| match class {
            Class::Url(url) => Some(url),
            _ => None,
        }))
        .await?
        .into_iter()
        .map(|site| (site.url.as_str().to_owned(), site))
        .collect();
    sites.extend(
        by_url
            .values()
            .map(|site| (site.site_id.to_string(), site.clone())),
    );
    let contents = store
        .site_contents(&sites.keys().cloned().collect::<Vec<_>>())
        .await?;
    let apps: HashMap<String, (AppInstallation, bool)> = apps
        .into_iter()
        .map(|(app, installed)| (app.app_installation_id.to_string(), (app, installed)))
        .collect();

    let describe_site = |result: &mut pb::ResolvedInput, site: &Site| {
        result.site_id = site.site_id.to_string();
        result.site_name = site.name.clone();
        result.site_url = site.url.as_str().to_owned();
        result.site_state = site_state(site.state) as i32;
        if let Some((products, apps)) = contents.get(&result.site_id) {
            result.active_products = products.clone();
            result.app_installations = i32::try_from(*apps).unwrap_or(i32::MAX);
        }
    };
    Ok(inputs
        .iter()
        .zip(classes)
        .map(|(input, class)| match class {
            Class::Unresolved(kind, problem) => pb::ResolvedInput {
                input: input.clone(),
                kind: kind as i32,
                problem,
                ..Default::default()
            },
            Class::Site(id) => {
                let mut result = pb::ResolvedInput {
                    input: input.clone(),
                    kind: pb::InputKind::Site as i32,
                    ..Default::default()
                };
                match sites.get(&id) {
                    Some(site) => {
                        result.found = true;
                        describe_site(&mut result, site);
                    }
                    None => {
                        result.site_id = id;
                        result.problem = "no such site".to_owned();
                    }
                }
                result
            }
            Class::App(id) => {
                let mut result = pb::ResolvedInput {
                    input: input.clone(),
                    kind: pb::InputKind::AppInstallation as i32,
                    app_installation_id: id.clone(),
                    ..Default::default()
                };
                match apps.get(&id) {
                    Some((app, installed)) => {
                        result.found = true;
                        result.app_key = app.app_key.clone();
                        result.app_installed = *installed;
                        if let Some(site) = sites.get(&app.site_id.to_string()) {
                            describe_site(&mut result, site);
                        }
                    }
                    None => result.problem = "no such app installation".to_owned(),
                }
                result
            }
            Class::Url(url) => {
                let mut result = pb::ResolvedInput {
                    input: input.clone(),
                    kind: pb::InputKind::SiteUrl as i32,
                    ..Default::default()
                };
                match by_url.get(&url) {
                    Some(site) => {
                        result.found = true;
                        describe_site(&mut result, site);
                    }
                    None => result.problem = format!("no site answers on {url}"),
                }
                result
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use micros_platform::ids::{AppInstallationId, OperationId, SiteId};

    use super::*;

    #[test]
    fn ids_are_what_their_prefix_says_and_nothing_is_guessed() {
        let site = SiteId::new().to_string();
        assert_eq!(classify(&site), Class::Site(site.clone()));
        let app = AppInstallationId::new().to_string();
        assert_eq!(classify(&app), Class::App(app.clone()));
        assert_eq!(
            classify(&OperationId::new().to_string()),
            Class::Unresolved(
                pb::InputKind::OtherId,
                "an operation ID, neither a site nor an app installation".to_owned()
            )
        );
        assert!(matches!(
            classify(" "),
            Class::Unresolved(pb::InputKind::Malformed, _)
        ));
        let padded = format!(" {site}");
        assert!(
            !matches!(classify(&padded), Class::Site(_)),
            "a padded ID is not trimmed into a site"
        );
    }

    #[test]
    fn a_site_url_is_looked_up_as_sites_are_stored() {
        let Class::Url(url) = classify("https://Acme.Example.com") else {
            panic!("a site URL");
        };
        assert_eq!(classify(&url), Class::Url(url.clone()));
    }
}
