//! Envoy stats for the counters and gauges the core keeps (see `crate::metrics`).
//!
//! proxy-wasm 0.2.5's metric wrappers panic on any status they do not expect, and a
//! panic kills the VM. These call the same host functions but treat every status
//! as a plain result.

use crate::metrics::{AppCounter, Counter, Counters, Gauge, GaugeShares, PREFIX};
use std::cell::RefCell;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_define_metric(
        metric_type: u32,
        name_data: *const u8,
        name_size: usize,
        return_metric_id: *mut u32,
    ) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
}

const STATUS_OK: u32 = 0;
const COUNTER: u32 = 0;
const GAUGE: u32 = 1;

/// Metric ids, defined once per VM. `None` where Envoy refused a definition: that
/// stat is then skipped, never fatal.
struct Ids {
    counters: Vec<Option<u32>>,
    gauges: Vec<Option<u32>>,
    /// This VM's share of `vm_memory_bytes`: once per VM, whatever the number of
    /// plugins (root contexts) it runs.
    vm_share: GaugeShares,
}

thread_local! {
    static IDS: RefCell<Option<Ids>> = const { RefCell::new(None) };
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
                vm_share: GaugeShares::default(),
            });
        }
    });
}

/// Passes on what a plugin counted since the last call, moves the gauges by the
/// change of this plugin's values (`shares`), and of this VM's memory.
pub fn report(counters: &mut Counters, shares: &mut GaugeShares, gauges: &[(Gauge, u64)]) {
    ensure_defined();
    let changed = counters.take_unreported();
    IDS.with(|ids| {
        let Ok(mut ids) = ids.try_borrow_mut() else {
            return;
        };
        let Some(ids) = ids.as_mut() else {
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
        let memory = ids
            .vm_share
            .change_to(Gauge::VmMemoryBytes, vm_memory_bytes());
        let changes = gauges
            .iter()
            .map(|(gauge, value)| (*gauge, shares.change_to(*gauge, *value)))
            .chain([(Gauge::VmMemoryBytes, memory)]);
        for (gauge, change) in changes {
            let id = position(Gauge::ALL, &gauge).and_then(|i| ids.gauges.get(i));
            if let (Some(Some(id)), true) = (id, change != 0) {
                // SAFETY: plain integers. Envoy adds a negative offset to a gauge
                // as a subtraction.
                let _ = unsafe { proxy_increment_metric(*id, change) };
            }
        }
    });
}

/// Adds each phase's time and count to `profile.<phase>.ns` / `.spans`, defining
/// those counters on first use (`ids`).
#[cfg(feature = "profile")]
pub fn report_profile(ids: &mut Vec<[Option<u32>; 2]>) {
    if ids.is_empty() {
        *ids = crate::profile::Phase::ALL
            .iter()
            .map(|phase| {
                [
                    define(COUNTER, &format!("profile.{}.ns", phase.name())),
                    define(COUNTER, &format!("profile.{}.spans", phase.name())),
                ]
            })
            .collect();
    }
    for (phase, nanos, spans) in crate::profile::take() {
        let Some([ns_id, spans_id]) = ids.get(phase as usize) else {
            continue;
        };
        for (id, amount) in [(ns_id, nanos), (spans_id, spans)] {
            if let Some(id) = id {
                let offset = i64::try_from(amount).unwrap_or(i64::MAX);
                // SAFETY: plain integers.
                let _ = unsafe { proxy_increment_metric(*id, offset) };
            }
        }
    }
}

/// Each app's counter ids, by [`AppCounter`]; `None` where Envoy refused one.
pub type AppIds = [Option<u32>; 2];

/// Defines the per-app counters of apps named `names`, in order.
pub fn define_app_counters<'a>(names: impl Iterator<Item = &'a str>) -> Vec<AppIds> {
    names
        .map(|name| AppCounter::ALL.map(|counter| define(COUNTER, &counter.name(name))))
        .collect()
}

/// Passes on what each app counted since the last call.
pub fn report_apps(counters: &mut Counters, ids: &[AppIds]) {
    for (app, counter, delta) in counters.take_unreported_apps() {
        let id = ids.get(app).and_then(|ids| ids.get(counter as usize));
        if let Some(Some(id)) = id {
            let offset = i64::try_from(delta).unwrap_or(i64::MAX);
            // SAFETY: plain integers.
            let _ = unsafe { proxy_increment_metric(*id, offset) };
        }
    }
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
