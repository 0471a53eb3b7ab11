#!/usr/bin/env node
import { Command } from 'commander';
import { packageVersion, run } from './common.js';
import { dispatcherCommand } from './dispatcher-command.js';
import { nodeCommand } from './node-command.js';
import { shellCommand } from './shell-command.js';

/** `nodeset dispatcher|node|shell …`: the same commands as nodeset-dispatcher, nodeset-node, nodeset-shell. */
const program = new Command('nodeset')
  .description('nodeset: publish/subscribe for distributed services')
  .version(packageVersion(), '-V, --version')
  .exitOverride()
  .addCommand(dispatcherCommand('dispatcher'))
  .addCommand(nodeCommand('node'))
  .addCommand(shellCommand('shell'));

await run(program);
