'use strict';
// The README documents every method the client has for an RPC, with an example line.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { test } = require('node:test');
const { RPC_METHODS } = require('../index.js');

test('index.d.ts declares every RPC method', () => {
  const declarations = fs.readFileSync(path.join(__dirname, '..', 'index.d.ts'), 'utf8');
  const missing = Object.values(RPC_METHODS).filter((name) => !new RegExp(`^  ${name}\\(`, 'm').test(declarations));
  assert.deepEqual(missing, []);
});

test('README.md names every RPC method with its arguments', () => {
  const readme = fs.readFileSync(path.join(__dirname, '..', 'README.md'), 'utf8');
  const missing = Object.values(RPC_METHODS).filter((name) => !readme.includes(`\`${name}(`));
  assert.deepEqual(missing, []);
});
