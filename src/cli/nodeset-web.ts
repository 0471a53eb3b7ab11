#!/usr/bin/env node
import { run } from './common.js';
import { webCommand } from './web-command.js';

await run(webCommand());
