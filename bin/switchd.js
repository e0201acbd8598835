#!/usr/bin/env node
'use strict'
require('../dist/switch/main.js').main(process.argv.slice(2))
