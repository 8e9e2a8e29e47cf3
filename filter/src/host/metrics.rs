//! Envoy stats for the counters the core keeps (see `crate::metrics`).
//!
//! proxy-wasm 0.2.5's metric wrappers panic on any status they do not expect, and a
//! panic kills the VM. These call the same host functions but treat every status
//! as a plain result.

use crate::metrics::{Counter, Counters, Gauge, PREFIX};
use std::cell::RefCell;
use std::collections::BTreeMap;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_define_metric(
        metric_type: u32,
        name_data: *const u8,
        name_size: usize,
        return_metric_id: *mut u32,
    ) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_record_metric(metric_id: u32, value: u64) -> u32;
}

const STATUS_OK: u32 = 0;
const COUNTER: u32 = 0;
const GAUGE: u32 = 1;

/// Metric ids, defined once per VM. `None` where Envoy refused a definition: that
/// stat is then skipped, never fatal.
struct Ids {
    counters: Vec<Option<u32>>,
    gauges: Vec<Option<u32>>,
}

thread_local! {
    static IDS: RefCell<Option<Ids>> = const { RefCell::new(None) };
    /// Each plugin configuration in this VM (root context) reports its own cache
    /// sizes; a gauge shows their sum.
    static GAUGES_BY_ROOT: RefCell<BTreeMap<u32, Vec<(Gauge, u64)>>> =
        const { RefCell::new(BTreeMap::new()) };
}

fn define(metric_type: u32, name: &str) -> Option<u32> {
    let full = format!("{PREFIX}.{name}");
    let mut id = 0u32;
    // SAFETY: the name is a live byte slice for the call; `id` is a valid out pointer.
    let status = unsafe { proxy_define_metric(metric_type, full.as_ptr(), full.len(), &mut id) };
    (status == STATUS_OK).then_some(id)
}

fn ensure_defined() {
    IDS.with(|ids| {
        let Ok(mut ids) = ids.try_borrow_mut() else {
            return;
        };
        if ids.is_none() {
            *ids = Some(Ids {
                counters: Counter::ALL
                    .iter()
                    .map(|c| define(COUNTER, c.name()))
                    .collect(),
                gauges: Gauge::ALL.iter().map(|g| define(GAUGE, g.name())).collect(),
            });
        }
    });
}

/// Passes on what `root_id`'s configuration counted since the last call and
/// sets the gauges to the sum over this VM's configurations.
pub fn report(root_id: u32, counters: &mut Counters, gauges: &[(Gauge, u64)]) {
    ensure_defined();
    let changed = counters.take_unreported();
    let gauges = summed_gauges(root_id, gauges);
    IDS.with(|ids| {
        let Ok(ids) = ids.try_borrow() else {
            return;
        };
        let Some(ids) = ids.as_ref() else {
            return;
        };
        for (counter, delta) in changed {
            let id = position(Counter::ALL, &counter).and_then(|i| ids.counters.get(i));
            if let Some(Some(id)) = id {
                let offset = i64::try_from(delta).unwrap_or(i64::MAX);
                // SAFETY: plain integers.
                let _ = unsafe { proxy_increment_metric(*id, offset) };
            }
        }
        for (gauge, value) in gauges {
            let id = position(Gauge::ALL, &gauge).and_then(|i| ids.gauges.get(i));
            if let Some(Some(id)) = id {
                // SAFETY: plain integers.
                let _ = unsafe { proxy_record_metric(*id, value) };
            }
        }
    });
}

/// VM-wide gauges (memory) are the same from every root; they are not summed.
fn summed_gauges(root_id: u32, gauges: &[(Gauge, u64)]) -> Vec<(Gauge, u64)> {
    GAUGES_BY_ROOT.with(|by_root| {
        let Ok(mut by_root) = by_root.try_borrow_mut() else {
            return gauges.to_vec();
        };
        by_root.insert(root_id, gauges.to_vec());
        Gauge::ALL
            .iter()
            .map(|gauge| {
                let values = by_root.values().flatten().filter(|(g, _)| g == gauge);
                let total = if *gauge == Gauge::VmMemoryBytes {
                    values.map(|(_, v)| *v).max().unwrap_or(0)
                } else {
                    values.fold(0u64, |sum, (_, v)| sum.saturating_add(*v))
                };
                (*gauge, total)
            })
            .collect()
    })
}

/// A configuration that goes away (reconfigured or deleted) stops counting.
pub fn forget_root(root_id: u32) {
    GAUGES_BY_ROOT.with(|by_root| {
        if let Ok(mut by_root) = by_root.try_borrow_mut() {
            by_root.remove(&root_id);
        }
    });
}

fn position<T: PartialEq>(all: &[T], item: &T) -> Option<usize> {
    all.iter().position(|candidate| candidate == item)
}

/// The VM's linear memory: what the Wasm runtime holds for this worker.
pub fn vm_memory_bytes() -> u64 {
    let pages = core::arch::wasm32::memory_size(0);
    u64::try_from(pages)
        .unwrap_or(u64::MAX)
        .saturating_mul(65_536)
}
