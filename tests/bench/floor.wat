;; The least work a bearer-token filter can do in Wasm: one callback per request
;; that reads every request header from Envoy (one host call, which makes Envoy
;; call back into the VM for memory) and removes the `authorization` header,
;; then lets the request through. `make profile` runs it as a reference line:
;; what it costs above the no-op filter (noop.wat) is a floor under any filter
;; that reads a token and strips it, before any decision is made.
(module
  (import "env" "proxy_get_header_map_pairs" (func $header_pairs (param i32 i32 i32) (result i32)))
  (import "env" "proxy_remove_header_map_value" (func $remove_header (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 256) "authorization")
  (global $next (mut i32) (i32.const 1024))
  (func (export "proxy_abi_version_0_2_1"))
  ;; A bump allocator, emptied at each request: the headers read are dropped.
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (local $start i32)
    (local.set $start (global.get $next))
    (global.set $next (i32.add (global.get $next) (local.get $size)))
    (local.get $start))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  ;; Map type 0 = request headers; the pairs' address and size land at 512 and 516.
  ;; 0 = Continue.
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (global.set $next (i32.const 1024))
    (drop (call $header_pairs (i32.const 0) (i32.const 512) (i32.const 516)))
    (drop (call $remove_header (i32.const 0) (i32.const 256) (i32.const 13)))
    (i32.const 0))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_delete") (param i32)))
