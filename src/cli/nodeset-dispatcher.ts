#!/usr/bin/env node
import { run } from './common.js';
import { dispatcherCommand } from './dispatcher-command.js';

await run(dispatcherCommand());
