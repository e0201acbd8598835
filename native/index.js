'use strict'
// Loads build/Release/tap.node (or a prebuild); the typed contract is index.d.ts.
module.exports = require('node-gyp-build')(require('path').join(__dirname, '..'))
