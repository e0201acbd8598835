#!/usr/bin/env node
'use strict'
require('../dist/bench/main.js').main(process.argv.slice(2))
