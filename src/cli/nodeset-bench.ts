#!/usr/bin/env node
import { benchCommand } from './bench-command.js';
import { run } from './common.js';

await run(benchCommand());
