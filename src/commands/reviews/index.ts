// `sluice reviews …`: wires the verbs; `ls` is the default.
import { Command } from 'commander';
import type { Factory } from '../../factory.js';
import { defineReviewsApprove } from './approve.js';
import { defineReviewsList } from './list.js';
import { defineReviewsReject } from './reject.js';
import { defineReviewsShow } from './show.js';

export function defineReviews(f: Factory): Command {
  return new Command('reviews')
    .description('statements held for approval: list them, approve or reject them')
    .addCommand(defineReviewsList(f), { isDefault: true })
    .addCommand(defineReviewsShow(f))
    .addCommand(defineReviewsApprove(f))
    .addCommand(defineReviewsReject(f));
}
