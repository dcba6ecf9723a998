use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use futures::FutureExt;
use futures::future::BoxFuture;
use tollgate_accounts::{EntityId, KeyRecord, TeamRecord, UserRecord};
use tollgate_ledger::Nanos;

use crate::{Batch, Entities, Store, StoreResult, Totals, UsageRow};

/// A store in memory: nothing survives the process. For tests.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    keys: HashMap<String, KeyRecord>,
    users: HashMap<String, UserRecord>,
    teams: HashMap<String, TeamRecord>,
    spend: HashMap<(String, i64), Nanos>,
    usage: BTreeMap<(String, i64, String), Totals>,
}

impl MemoryStore {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut state)
    }

    fn ready<T: Send + 'static>(value: T) -> BoxFuture<'static, StoreResult<T>> {
        futures::future::ready(Ok(value)).boxed()
    }
}

impl Store for MemoryStore {
    fn load(&self) -> BoxFuture<'_, StoreResult<Entities>> {
        Self::ready(self.with(|s| Entities {
            keys: s.keys.values().cloned().collect(),
            users: s.users.values().cloned().collect(),
            teams: s.teams.values().cloned().collect(),
        }))
    }

    fn put_key(&self, key: KeyRecord) -> BoxFuture<'_, StoreResult<()>> {
        self.with(|s| {
            s.keys.insert(key.token.clone(), key);
        });
        Self::ready(())
    }

    fn delete_key(&self, token: String) -> BoxFuture<'_, StoreResult<()>> {
        self.with(|s| {
            s.keys.remove(&token);
        });
        Self::ready(())
    }

    fn put_user(&self, user: UserRecord) -> BoxFuture<'_, StoreResult<()>> {
        self.with(|s| {
            s.users.insert(user.user_id.clone(), user);
        });
        Self::ready(())
    }

    fn delete_user(&self, user_id: String) -> BoxFuture<'_, StoreResult<()>> {
        self.with(|s| {
            s.users.remove(&user_id);
        });
        Self::ready(())
    }

    fn put_team(&self, team: TeamRecord) -> BoxFuture<'_, StoreResult<()>> {
        self.with(|s| {
            s.teams.insert(team.team_id.clone(), team);
        });
        Self::ready(())
    }

    fn delete_team(&self, team_id: String) -> BoxFuture<'_, StoreResult<()>> {
        self.with(|s| {
            s.teams.remove(&team_id);
        });
        Self::ready(())
    }

    fn spend(&self, entity: EntityId, period_start: i64) -> BoxFuture<'_, StoreResult<Nanos>> {
        let key = (entity.storage_key(), period_start);
        Self::ready(self.with(|s| s.spend.get(&key).copied().unwrap_or(0)))
    }

    fn commit(&self, batch: Batch) -> BoxFuture<'_, StoreResult<()>> {
        let agg = batch.aggregate();
        self.with(|s| {
            for (key, amount) in agg.spend {
                *s.spend.entry(key).or_default() += amount;
            }
            for (key, totals) in agg.usage {
                s.usage.entry(key).or_default().add(totals);
            }
        });
        Self::ready(())
    }

    fn usage(
        &self,
        entity: EntityId,
        from_day: i64,
        to_day: i64,
    ) -> BoxFuture<'_, StoreResult<Vec<UsageRow>>> {
        let name = entity.storage_key();
        let rows = self.with(|s| {
            s.usage
                .range((name.clone(), from_day, String::new())..)
                .take_while(|((e, day, _), _)| *e == name && *day <= to_day)
                .map(|((_, day, model), totals)| UsageRow {
                    day: *day,
                    model: model.clone(),
                    totals: *totals,
                })
                .collect()
        });
        Self::ready(rows)
    }
}
