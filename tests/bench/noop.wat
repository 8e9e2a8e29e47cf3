;; The cheapest Wasm HTTP filter there is: one callback per request, which lets
;; the request through. `make bench` runs it as a reference line: no Wasm filter
;; can be faster, so it shows how much of a gap to no-auth is Envoy's Wasm
;; machinery rather than the filter's own work. Assembled with Binaryen's wasm-as.
(module
  (memory (export "memory") 1)
  (global $next (mut i32) (i32.const 1024))
  (func (export "proxy_abi_version_0_2_1"))
  ;; A bump allocator: Envoy only asks for memory when a filter reads host data,
  ;; which this one never does.
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (local $start i32)
    (local.set $start (global.get $next))
    (global.set $next (i32.add (global.get $next) (local.get $size)))
    (local.get $start))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  ;; 0 = Continue
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_delete") (param i32)))
