#!/usr/bin/env node
// Bundles the web console (src/ui) into dist/ui, where switchd serves it from
// (src/switch/control/console.ts). esbuild, because it is already in the tree
// (tsx runs on it), bundles and minifies TypeScript in one call in well under
// a second, and adds no runtime code of its own: the page stays a few tens of KB.
'use strict'
const fs = require('node:fs')
const path = require('node:path')
const esbuild = require('esbuild')

const root = path.join(__dirname, '..')
const src = path.join(root, 'src', 'ui')
const out = path.join(root, 'dist', 'ui')
fs.mkdirSync(out, { recursive: true })
esbuild.buildSync({
  entryPoints: [path.join(src, 'main.ts')],
  outfile: path.join(out, 'console.js'),
  bundle: true,
  minify: true,
  format: 'iife',
  target: ['chrome110', 'firefox115', 'safari16'],
  legalComments: 'none',
  logLevel: 'warning'
})
for (const f of ['index.html', 'console.css', 'icon.svg']) fs.copyFileSync(path.join(src, f), path.join(out, f))
