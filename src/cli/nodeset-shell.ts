#!/usr/bin/env node
import { run } from './common.js';
import { shellCommand } from './shell-command.js';

await run(shellCommand());
