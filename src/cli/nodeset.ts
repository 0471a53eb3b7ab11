#!/usr/bin/env node
import { Command } from 'commander';
import { benchCommand } from './bench-command.js';
import { pubCommand, replyCommand, reqCommand, subCommand } from './client-commands.js';
import { packageVersion, run } from './common.js';
import { dispatcherCommand } from './dispatcher-command.js';
import { monitorCommand } from './monitor-command.js';
import { nodeCommand } from './node-command.js';
import { shellCommand } from './shell-command.js';
import { webCommand } from './web-command.js';

/**
 * `nodeset pub|sub|req|reply …` for quick work with events, and
 * `nodeset dispatcher|node|shell|monitor|web|bench …`: the same commands as the nodeset-* ones.
 */
const program = new Command('nodeset')
  .description('nodeset: publish/subscribe for distributed services')
  .version(packageVersion(), '-V, --version')
  .exitOverride()
  .showHelpAfterError('(nodeset --help lists the commands)')
  .addCommand(pubCommand('pub'))
  .addCommand(subCommand('sub'))
  .addCommand(reqCommand('req'))
  .addCommand(replyCommand('reply'))
  .addCommand(dispatcherCommand('dispatcher'))
  .addCommand(nodeCommand('node'))
  .addCommand(shellCommand('shell'))
  .addCommand(monitorCommand('monitor'))
  .addCommand(webCommand('web'))
  .addCommand(benchCommand('bench'));

await run(program);
