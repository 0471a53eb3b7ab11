#!/usr/bin/env node
import { run } from './common.js';
import { nodeCommand } from './node-command.js';

await run(nodeCommand());
