use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tollgate_accounts::{EntityId, KeyRecord, TeamRecord, UserRecord};
use tollgate_ledger::Nanos;

use crate::{Batch, Entities, Store, StoreError, StoreResult, Totals, UsageRow};

const KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("keys");
const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
const TEAMS: TableDefinition<&str, &[u8]> = TableDefinition::new("teams");
/// (entity, period start) → settled nano-USD.
const SPEND: TableDefinition<(&str, i64), u64> = TableDefinition::new("spend");
/// (entity, day, model) → (requests, input tokens, output tokens, spend).
type UsageKey<'a> = (&'a str, i64, &'a str);
type UsageValue = (u64, u64, u64, u64);
const USAGE: TableDefinition<UsageKey, UsageValue> = TableDefinition::new("usage");

/// The embedded store: one redb file under the data directory. Every commit is fsync'd
/// (redb's default durability), so what a commit returned is on disk.
#[derive(Debug, Clone)]
pub struct RedbStore {
    db: Arc<Database>,
    path: PathBuf,
}

impl RedbStore {
    /// Opens (or creates) `dir/tollgate.redb`.
    pub fn open(dir: &Path) -> StoreResult<Self> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::backend("open", e))?;
        let path = dir.join("tollgate.redb");
        let db = Database::create(&path).map_err(|e| StoreError::backend("open", e))?;
        let tx = db
            .begin_write()
            .map_err(|e| StoreError::backend("open", e))?;
        {
            tx.open_table(KEYS)
                .map_err(|e| StoreError::backend("open", e))?;
            tx.open_table(USERS)
                .map_err(|e| StoreError::backend("open", e))?;
            tx.open_table(TEAMS)
                .map_err(|e| StoreError::backend("open", e))?;
            tx.open_table(SPEND)
                .map_err(|e| StoreError::backend("open", e))?;
            tx.open_table(USAGE)
                .map_err(|e| StoreError::backend("open", e))?;
        }
        tx.commit().map_err(|e| StoreError::backend("open", e))?;
        Ok(Self {
            db: Arc::new(db),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs blocking database work off the async threads.
    fn blocking<T, F>(&self, operation: &'static str, f: F) -> BoxFuture<'static, StoreResult<T>>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, Box<dyn std::error::Error + Send + Sync>>
            + Send
            + 'static,
    {
        let db = self.db.clone();
        async move {
            tokio::task::spawn_blocking(move || f(&db))
                .await
                .map_err(|e| StoreError::backend(operation, e))?
                .map_err(|e| StoreError::backend(operation, e))
        }
        .boxed()
    }

    fn put<T: Serialize>(
        &self,
        operation: &'static str,
        table: TableDefinition<'static, &'static str, &'static [u8]>,
        id: String,
        record: &T,
    ) -> BoxFuture<'static, StoreResult<()>> {
        let bytes = serde_json::to_vec(record);
        self.blocking(operation, move |db| {
            let bytes = bytes?;
            let tx = db.begin_write()?;
            tx.open_table(table)?
                .insert(id.as_str(), bytes.as_slice())?;
            tx.commit()?;
            Ok(())
        })
    }

    fn delete(
        &self,
        operation: &'static str,
        table: TableDefinition<'static, &'static str, &'static [u8]>,
        id: String,
    ) -> BoxFuture<'static, StoreResult<()>> {
        self.blocking(operation, move |db| {
            let tx = db.begin_write()?;
            tx.open_table(table)?.remove(id.as_str())?;
            tx.commit()?;
            Ok(())
        })
    }
}

type DynError = Box<dyn std::error::Error + Send + Sync>;

fn read_all<T: DeserializeOwned>(
    tx: &redb::ReadTransaction,
    table: TableDefinition<&str, &[u8]>,
) -> Result<Vec<T>, DynError> {
    let table = tx.open_table(table)?;
    let mut out = Vec::new();
    for row in table.iter()? {
        let (_, value) = row?;
        out.push(serde_json::from_slice(value.value())?);
    }
    Ok(out)
}

impl Store for RedbStore {
    fn load(&self) -> BoxFuture<'_, StoreResult<Entities>> {
        self.blocking("load", |db| {
            let tx = db.begin_read()?;
            Ok(Entities {
                keys: read_all(&tx, KEYS)?,
                users: read_all(&tx, USERS)?,
                teams: read_all(&tx, TEAMS)?,
            })
        })
    }

    fn put_key(&self, key: KeyRecord) -> BoxFuture<'_, StoreResult<()>> {
        self.put("put_key", KEYS, key.token.clone(), &key)
    }

    fn delete_key(&self, token: String) -> BoxFuture<'_, StoreResult<()>> {
        self.delete("delete_key", KEYS, token)
    }

    fn put_user(&self, user: UserRecord) -> BoxFuture<'_, StoreResult<()>> {
        self.put("put_user", USERS, user.user_id.clone(), &user)
    }

    fn delete_user(&self, user_id: String) -> BoxFuture<'_, StoreResult<()>> {
        self.delete("delete_user", USERS, user_id)
    }

    fn put_team(&self, team: TeamRecord) -> BoxFuture<'_, StoreResult<()>> {
        self.put("put_team", TEAMS, team.team_id.clone(), &team)
    }

    fn delete_team(&self, team_id: String) -> BoxFuture<'_, StoreResult<()>> {
        self.delete("delete_team", TEAMS, team_id)
    }

    fn spend(&self, entity: EntityId, period_start: i64) -> BoxFuture<'_, StoreResult<Nanos>> {
        let name = entity.storage_key();
        self.blocking("spend", move |db| {
            let tx = db.begin_read()?;
            let table = tx.open_table(SPEND)?;
            Ok(table
                .get((name.as_str(), period_start))?
                .map_or(0, |v| v.value()))
        })
    }

    fn commit(&self, batch: Batch) -> BoxFuture<'_, StoreResult<()>> {
        let agg = batch.aggregate();
        self.blocking("commit", move |db| {
            let tx = db.begin_write()?;
            {
                let mut spend = tx.open_table(SPEND)?;
                for ((entity, period), amount) in &agg.spend {
                    let key = (entity.as_str(), *period);
                    let old = spend.get(key)?.map_or(0, |v| v.value());
                    spend.insert(key, old.saturating_add(*amount))?;
                }
                let mut usage = tx.open_table(USAGE)?;
                for ((entity, day, model), add) in &agg.usage {
                    let key = (entity.as_str(), *day, model.as_str());
                    let mut totals = usage.get(key)?.map_or(Totals::default(), |v| {
                        let (requests, input_tokens, output_tokens, spend) = v.value();
                        Totals {
                            requests,
                            input_tokens,
                            output_tokens,
                            spend,
                        }
                    });
                    totals.add(*add);
                    usage.insert(
                        key,
                        (
                            totals.requests,
                            totals.input_tokens,
                            totals.output_tokens,
                            totals.spend,
                        ),
                    )?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn usage(
        &self,
        entity: EntityId,
        from_day: i64,
        to_day: i64,
    ) -> BoxFuture<'_, StoreResult<Vec<UsageRow>>> {
        let name = entity.storage_key();
        self.blocking("usage", move |db| {
            let tx = db.begin_read()?;
            let table = tx.open_table(USAGE)?;
            let mut rows = Vec::new();
            for row in table.range((name.as_str(), from_day, "")..)? {
                let (key, value) = row?;
                let (entity, day, model) = key.value();
                if entity != name || day > to_day {
                    break;
                }
                let (requests, input_tokens, output_tokens, spend) = value.value();
                rows.push(UsageRow {
                    day,
                    model: model.to_owned(),
                    totals: Totals {
                        requests,
                        input_tokens,
                        output_tokens,
                        spend,
                    },
                });
            }
            Ok(rows)
        })
    }
}
