// Runs a wasm32-wasip1 command module under Node's WASI, i.e. under V8, the Wasm
// engine of Envoy's envoy.wasm.runtime.v8. Usage: node run-wasi.mjs module.wasm [args...]
import { readFile } from 'node:fs/promises';
import { WASI } from 'node:wasi';
import process from 'node:process';

const [modulePath, ...args] = process.argv.slice(2);
const wasi = new WASI({ version: 'preview1', args: [modulePath, ...args], env: {}, returnOnExit: true });
const module = await WebAssembly.compile(await readFile(modulePath));
// The library links proxy-wasm host imports (module "env") it never calls here.
const imports = wasi.getImportObject();
for (const { module: name, kind, name: field } of WebAssembly.Module.imports(module)) {
  if (name !== 'wasi_snapshot_preview1' && kind === 'function') {
    imports[name] ??= {};
    imports[name][field] = () => { throw new Error(`host import ${name}.${field} called`); };
  }
}
const instance = await WebAssembly.instantiate(module, imports);
// The library's proxy-wasm entry point also exports `_initialize`, which WASI.start
// refuses next to `_start`; hand it only what a command needs.
const { _start, memory } = instance.exports;
process.exitCode = wasi.start({ exports: { _start, memory } });
