// `@on` declares handlers with standard (TC39) decorators. Compiled with
// TypeScript's `experimentalDecorators`, it is called the legacy way and must
// say so with BAD_OPTION when the class is defined, not fail later with a
// TypeError.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import ts from 'typescript';
import { Node, NodesetError, on } from '../src/index.js';

const SOURCE = `
class Billing extends Node {
  @on('orders.created')
  charge(order: unknown) {
    return order;
  }
}
return Billing;
`;

/** Compiles SOURCE as a project with the given decorator setting would, and defines its class. */
function defineClass(experimentalDecorators: boolean): unknown {
  const { outputText } = ts.transpileModule(SOURCE, {
    compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext, experimentalDecorators },
  });
  return new Function('Node', 'on', outputText)(Node, on);
}

test('@on compiled with experimentalDecorators throws BAD_OPTION at class definition', () => {
  assert.throws(
    () => defineClass(true),
    (err: unknown) => {
      assert.ok(err instanceof NodesetError, `not a NodesetError: ${String(err)}`);
      assert.equal(err.code, 'BAD_OPTION');
      assert.match(err.message, /standard \(TC39\) decorators/);
      assert.match(err.message, /experimentalDecorators/);
      assert.match(err.message, /orders\.created/);
      return true;
    },
  );
});

test('@on compiled with standard decorators defines the class', () => {
  const Billing = defineClass(false);
  assert.equal(typeof Billing, 'function');
});
