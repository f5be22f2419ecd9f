//! Fuzzy search (UserSearch) without plaintext at rest: keyed trigram indexes find a few candidates,
//! whose records are then opened and ranked by real similarity.
//!
//! Each indexed value (email, phone, login, custom) is stored as the set of its trigrams, each an
//! HMAC under the tenant's index key and the field's name, cut to 8 bytes. A search makes the same
//! hashes of what it was given, asks the database for the users sharing the most of them (a GIN
//! index over the sets), opens at most [`CANDIDATES`] records and keeps those whose value is close
//! enough ([`similarity`]). The database learns which users share trigrams, never a trigram; the
//! cost is one index probe and a bounded number of decryptions, whatever the tenant's size.

use std::collections::HashMap;

use bunker_db::audit::{self, Actor};
use bunker_db::users as store;
use bunker_db::TenantTx;
use bunker_keys::TenantKeys;
use bunker_tenancy::Caller;
use serde_json::Value;
use uuid::Uuid;

use crate::core::gate::Gate;

use crate::access::Command;
use crate::bulk::require_unlock;
use crate::core::grams::SearchGrams;
use crate::core::identity::{Normalizer, INDEXED_FIELDS};
use crate::core::is_live;
use crate::core::limits::MAX_INDEXED_CHARS;
use crate::core::{read_events, Vault, VaultError};
use crate::users::{open_current, view_of, UserView};

/// How many candidates are opened and ranked at most.
const CANDIDATES: i64 = 50;
/// How many matches a search answers at most.
pub const MATCHES: usize = 20;
/// How close a value must be to be a match (0 to 1).
const THRESHOLD: f64 = 0.75;

/// How alike a search term and a stored value are, from 0 to 1: 1 for equal, 0.9 when the value
/// contains the term (three characters or more), else edit-distance similarity; 0 for values
/// whose lengths alone keep them under [`THRESHOLD`] (the distance is at least the difference in
/// length), which spares the quadratic edit distance for them.
pub fn similarity(term: &str, value: &str) -> f64 {
    let (a, b) = (term.chars().count(), value.chars().count());
    if term == value {
        1.0
    } else if a >= 3 && value.contains(term) {
        0.9
    } else if (a.abs_diff(b) as f64) > (1.0 - THRESHOLD) * a.max(b) as f64 {
        0.0
    } else {
        strsim::normalized_damerau_levenshtein(term, value)
    }
}

/// The best similarity of any term to the value of its field, among the fields given.
fn score(terms: &[(&'static str, String)], values: &HashMap<&'static str, String>) -> f64 {
    terms
        .iter()
        .filter_map(|(field, term)| Some(similarity(term, values.get(field)?)))
        .fold(0.0, f64::max)
}

impl Vault {
    /// Users whose email (for a term with `@`), or login, phone or custom value (otherwise) is
    /// like `identity`, best first. Behind a bulk unlock and `BUNKER_LIST_USERS` (a search for a
    /// few letters lists users); every user answered is audited. Only fields the caller may see
    /// are compared, so that the ranking tells nothing about hidden ones.
    pub async fn search_users(
        &self,
        caller: &Caller,
        unlock: String,
        identity: String,
        metadata: Option<Value>,
    ) -> Result<Vec<UserView>, VaultError> {
        self.check_search(&identity)?;
        let tenant = caller.tenant.id;
        let keys = self.keys(tenant).await?;
        let actor = caller.actor();
        let principal = caller.principal.clone();
        let normalizer = self.settings.normalizer.clone();
        self.db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    require_unlock(tx, &unlock, actor.token_id).await?;
                    let gate = Gate::load(tx, &principal).await?;
                    let search = Search {
                        keys: &keys,
                        normalizer: &normalizer,
                        command: Command::UserSearch,
                        actor,
                        metadata: metadata.as_ref(),
                    };
                    search.run(tx, &gate, &identity).await
                })
            })
            .await
    }

    /// Refuses a search while listing users is off, or a term too long to be a value.
    pub(crate) fn check_search(&self, identity: &str) -> Result<(), VaultError> {
        if !self.settings.list_users {
            return Err(VaultError::Forbidden("UserSearch is disabled"));
        }
        if identity.chars().count() > MAX_INDEXED_CHARS {
            return Err(VaultError::BadRequest(format!(
                "The search term must be at most {MAX_INDEXED_CHARS} characters"
            )));
        }
        Ok(())
    }
}

/// A fuzzy search in one tenant (UserSearch, and each tenant of SystemSearchUserProfiles).
pub(crate) struct Search<'a> {
    pub keys: &'a TenantKeys,
    pub normalizer: &'a Normalizer,
    pub command: Command,
    pub actor: Actor,
    pub metadata: Option<&'a Value>,
}

impl Search<'_> {
    /// The users of the transaction's tenant like `identity` that `gate` may see, best first, at
    /// most [`MATCHES`]; each answered is audited as a read by the search's command.
    pub(crate) async fn run(
        &self,
        tx: &TenantTx<'_>,
        gate: &Gate,
        identity: &str,
    ) -> Result<Vec<UserView>, VaultError> {
        let Search {
            keys,
            normalizer,
            command,
            actor,
            metadata,
        } = *self;
        let fields: Vec<&'static str> = if identity.contains('@') {
            vec!["email"]
        } else {
            INDEXED_FIELDS
                .into_iter()
                .filter(|f| *f != "email")
                .collect()
        };
        let terms: Vec<(&'static str, String)> = fields
            .into_iter()
            .filter_map(|f| Some((f, normalizer.search_term(f, identity)?)))
            .collect();
        let queries: Vec<(&'static str, SearchGrams)> = terms
            .iter()
            .map(|(field, term)| (*field, SearchGrams::of(&keys.index, field, term)))
            .collect();
        // Each candidate with the fields whose query found it.
        let mut found: HashMap<Uuid, Vec<&'static str>> = HashMap::new();
        for (field, grams) in &queries {
            let hits = store::search_candidates(
                tx,
                field,
                &grams.all,
                &grams.probe,
                grams.min_shared,
                CANDIDATES,
            )
            .await?;
            for token in hits {
                found.entry(token).or_default().push(field);
            }
        }
        let mut tokens: Vec<Uuid> = found.keys().copied().collect();
        tokens.sort_unstable();
        let mut visible = gate.visible(tx, command, &tokens, metadata).await?;
        let mut candidates = Vec::new();
        for user in store::get_users(tx, &tokens).await? {
            let Some(seen) = visible.remove(&user.token) else {
                continue;
            };
            // Only a field the caller may see admits a candidate: a hidden value must not pull
            // anyone past another field's cap of candidates.
            let through_seen = found
                .get(&user.token)
                .is_some_and(|fields| fields.iter().any(|f| seen.field(f)));
            if !is_live(&user) || !through_seen {
                continue;
            }
            let profile = open_current(keys, tx.tenant(), &user)?;
            let values: HashMap<_, _> = normalizer
                .searchable_values(&profile)
                .into_iter()
                .filter(|(field, _)| seen.field(field))
                .collect();
            candidates.push((view_of(&user, &profile, &seen), values));
        }
        // Bounded (50 candidates a field, values and term of at most 320 characters) but
        // quadratic: off the async workers.
        let mut ranked = tokio::task::spawn_blocking(move || {
            candidates
                .into_iter()
                .map(|(view, values)| (score(&terms, &values), view))
                .filter(|(score, _)| *score >= THRESHOLD)
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|_| VaultError::BadRequest("The search failed".into()))?;
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        ranked.truncate(MATCHES);
        let views: Vec<UserView> = ranked.into_iter().map(|(_, v)| v).collect();
        let tokens: Vec<_> = views.iter().map(|v| v.token).collect();
        let events = read_events(keys, tx.tenant(), actor, command, &tokens, metadata)?;
        audit::record_many(tx, &events).await?;
        Ok(views)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::grams::{grams, searchable};
    use bunker_keys::MasterKey;

    #[test]
    fn a_misspelled_or_partial_value_is_close_and_a_different_one_is_not() {
        assert!(similarity("jdoee", "jdoe") >= THRESHOLD);
        assert!(similarity("jdo", "jdoe") >= THRESHOLD, "partial");
        assert!(similarity("jdoe@exmaple.com", "jdoe@example.com") >= THRESHOLD);
        assert!(similarity("jdoee", "asmith") < THRESHOLD);
        assert!(similarity("jdoee", "jane") < THRESHOLD);
    }

    #[test]
    fn grams_are_keyed_per_field_and_shared_by_similar_values() {
        let key = MasterKey::generate(1).tenant_keys(1).index;
        let a = grams(&key, "login", "jdoe");
        let b = grams(&key, "login", "jdoee");
        let shared = a.iter().filter(|g| b.contains(g)).count();
        assert_eq!(a.len(), 5, "  j, jd, jdo, doe, oe_");
        assert_eq!(shared, 4);
        let other_field = grams(&key, "custom", "jdoe");
        assert!(a.iter().all(|g| !other_field.contains(g)));
        let other_key = grams(
            &MasterKey::generate(1).tenant_keys(1).index,
            "login",
            "jdoe",
        );
        assert!(a.iter().all(|g| !other_key.contains(g)));
    }

    #[test]
    fn a_probe_leaves_out_the_leading_grams_yet_meets_the_bound() {
        let key = MasterKey::generate(1).tenant_keys(1).index;
        let q = SearchGrams::of(&key, "login", "jdoee");
        assert_eq!((q.all.len(), q.min_shared, q.probe.len()), (6, 3, 4));
        let leading = grams(&key, "login", "j");
        assert!(
            q.probe.iter().all(|g| !leading.contains(g)),
            "not the first letters"
        );
        let stored = grams(&key, "login", "jdoe");
        assert!(q.probe.iter().any(|g| stored.contains(g)));
        let short = SearchGrams::of(&key, "login", "jdo");
        assert_eq!((short.min_shared, short.probe.len()), (2, 3));
        let email = SearchGrams::of(&key, "email", "jdoee@example.com");
        assert_eq!(
            (email.all.len(), email.min_shared, email.probe.len()),
            (18, 14, 5)
        );
        let domain = grams(&key, "email", "example.com");
        assert!(
            email.probe.iter().all(|g| !domain.contains(g)),
            "not the domain"
        );
    }

    #[test]
    fn phones_are_searched_by_digits() {
        assert_eq!(searchable("phone", "+447911123456"), "447911123456");
        assert_eq!(searchable("email", " Jane@Example.com"), "jane@example.com");
    }
}
