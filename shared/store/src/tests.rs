use std::sync::Arc;

use serde_json::Map;
use tollgate_accounts::{KeyRecord, Limits};

use super::*;

fn key(token: &str) -> KeyRecord {
    KeyRecord {
        token: token.to_owned(),
        key_name: "sk-...abcd".to_owned(),
        key_alias: Some("alias".to_owned()),
        models: vec!["gpt-4o".to_owned()],
        limits: Limits {
            max_budget: Some(1_000),
            ..Limits::default()
        },
        user_id: None,
        team_id: None,
        metadata: Map::new(),
        expires: None,
        blocked: false,
        created_at: 7,
    }
}

fn settled(entity: &EntityId, period: i64, day: i64, model: &str, cost: u64) -> Settled {
    Settled {
        entity: entity.clone(),
        period_start: period,
        day,
        model: Arc::from(model),
        input_tokens: 10,
        output_tokens: 5,
        cost,
    }
}

async fn exercise(store: &dyn Store) {
    store.put_key(key("t1")).await.unwrap();
    store.put_key(key("t2")).await.unwrap();
    store.delete_key("t2".to_owned()).await.unwrap();
    let loaded = store.load().await.unwrap();
    assert_eq!(loaded.keys, vec![key("t1")]);

    let a = EntityId::Key(Arc::from("t1"));
    let b = EntityId::Key(Arc::from("t10"));
    let batch = Batch {
        settled: vec![
            settled(&a, 100, 5, "gpt-4o", 7),
            settled(&a, 100, 5, "gpt-4o", 3),
            settled(&a, 200, 6, "mini", 1),
            settled(&b, 100, 5, "gpt-4o", 1000),
        ],
    };
    store.commit(batch).await.unwrap();
    store
        .commit(Batch {
            settled: vec![settled(&a, 100, 5, "gpt-4o", 5)],
        })
        .await
        .unwrap();
    assert_eq!(store.spend(a.clone(), 100).await.unwrap(), 15);
    assert_eq!(store.spend(a.clone(), 200).await.unwrap(), 1);
    assert_eq!(store.spend(a.clone(), 300).await.unwrap(), 0);
    let rows = store.usage(a.clone(), 0, 100).await.unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0].model, "gpt-4o");
    assert_eq!(
        rows[0].totals,
        Totals {
            requests: 3,
            input_tokens: 30,
            output_tokens: 15,
            spend: 15
        }
    );
    assert_eq!(rows[1].day, 6);
    assert_eq!(store.usage(a, 6, 6).await.unwrap().len(), 1);
}

#[tokio::test]
async fn memory_store_semantics() {
    exercise(&MemoryStore::default()).await;
}

#[tokio::test]
async fn redb_store_semantics_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = RedbStore::open(dir.path()).unwrap();
        exercise(&store).await;
    }
    let store = RedbStore::open(dir.path()).unwrap();
    let a = EntityId::Key(Arc::from("t1"));
    assert_eq!(store.spend(a, 100).await.unwrap(), 15, "survives reopen");
    assert_eq!(store.load().await.unwrap().keys.len(), 1);
}
