#!/usr/bin/env node
'use strict'
require('../dist/lab/main.js').main(process.argv.slice(2))
