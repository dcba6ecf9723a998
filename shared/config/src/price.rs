pub use tollgate_ledger::Price;
