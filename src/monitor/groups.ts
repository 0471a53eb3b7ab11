import type { Dispatcher } from '../dispatcher/dispatcher.js';

/** Queue groups listed by the monitor: the largest this many. */
export const MONITOR_GROUPS_LIMIT = 50;
/** Member names listed per queue group (the count is always whole). */
export const MONITOR_GROUP_MEMBERS_LIMIT = 20;

/** One queue group as the monitor shows it. */
export interface QueueGroupInfo {
  /** The group's name. */
  group: string;
  /** The URI its members subscribed to. */
  uri: string;
  /** How many members it has. */
  size: number;
  /** Their node names, sorted, at most MONITOR_GROUP_MEMBERS_LIMIT. */
  members: string[];
}

/** The queue groups of a dispatcher, the largest first (bounded), and how many there are in all. */
export interface QueueGroups {
  /** How many queue groups the dispatcher has. */
  total: number;
  /** The largest, at most MONITOR_GROUPS_LIMIT, largest first. */
  groups: QueueGroupInfo[];
}

/**
 * The dispatcher's queue groups, one per group name and subscribed URI: the
 * largest `limit`, each with at most `membersLimit` member names. Walks every
 * subscription; called once a sample, only while someone is looking.
 */
export function queueGroups(
  dispatcher: Dispatcher,
  limit = MONITOR_GROUPS_LIMIT,
  membersLimit = MONITOR_GROUP_MEMBERS_LIMIT,
): QueueGroups {
  const byKey = new Map<string, QueueGroupInfo>();
  dispatcher.forEachGroupSubscription((group, uri, nodes) => {
    const key = `${uri}\u0000${group}`;
    let g = byKey.get(key);
    if (g === undefined) {
      g = { group, uri, size: 0, members: [] };
      byKey.set(key, g);
    }
    g.size += nodes.length;
    for (const name of nodes) {
      if (g.members.length >= membersLimit) break;
      g.members.push(name);
    }
  });
  const groups = [...byKey.values()]
    .sort((a, b) => b.size - a.size || a.uri.localeCompare(b.uri) || a.group.localeCompare(b.group))
    .slice(0, limit);
  for (const g of groups) g.members.sort();
  return { total: byKey.size, groups };
}
