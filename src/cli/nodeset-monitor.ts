#!/usr/bin/env node
import { run } from './common.js';
import { monitorCommand } from './monitor-command.js';

await run(monitorCommand());
