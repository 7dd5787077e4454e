import type { ClusterMessage } from './cluster-protocol.js'
import type { Link } from './link.js'

/** What the witnesses ask of their cluster. */
export interface PeerWitnessesComponents {
  /** The live links to peers, by peer id. */
  links: ReadonlyMap<string, Link>
  /** Sends a message, dropping it if the link is closing. */
  send(link: Link, message: ClusterMessage): void
  /** The links' heartbeatTimeout (ms): a peer silent this long is not heard. */
  heartbeatTimeout: number
  /** The links' heartbeatInterval (ms). */
  heartbeatInterval: number
}

interface Question {
  /** Peers asked that have not answered yet, and our links to them. */
  waiting: Map<string, Link>
  timer: NodeJS.Timeout
  poll: NodeJS.Timeout
  settle(heard: boolean): void
}

/** How often an open question checks whether the peers it waits on have gone silent too (ms). */
const POLL_MS = 100

/**
 * Indirect confirmation before a peer is marked down (the idea of SWIM's ping-req): when
 * our link to a peer falls silent, ask the other peers whether they still hear it. One
 * TCP connection can stall for seconds (retransmission back-off on a lossy path) while
 * its peer is well and talks to everyone else; a peer that is really hung, stopped or
 * cut off from us all is heard by nobody, and goes down at the usual bound.
 *
 * Only peers we hear ourselves are asked, and an answer counts only from a peer asked. A
 * peer asked that goes silent to us as well is not waited for: when we are the one cut
 * off, every question ends as soon as all our links are silent, not at its deadline.
 */
export class PeerWitnesses {
  readonly #components: PeerWitnessesComponents
  readonly #questions = new Map<number, Question>()
  #nextId = 0

  constructor(components: PeerWitnessesComponents) {
    this.#components = components
  }

  /**
   * Resolves true as soon as one other peer says it still hears `peerId`, silent to us for
   * `silent` ms (see `onSuspect`); false once all said no, or after `within` ms (an answer
   * that does not come is a no).
   */
  stillHeard(peerId: string, within: number, silent: number): Promise<boolean> {
    const { links, heartbeatTimeout } = this.#components
    const asked = [...links].filter(([id, link]) => id !== peerId && !link.closed && link.silentFor < heartbeatTimeout)
    if (asked.length === 0) return Promise.resolve(false)
    return new Promise<boolean>((resolve) => {
      const id = ++this.#nextId
      const question: Question = {
        waiting: new Map(asked),
        timer: setTimeout(() => question.settle(false), within),
        poll: setInterval(() => {
          for (const [witness, link] of question.waiting) {
            if (link.closed || link.silentFor >= heartbeatTimeout) question.waiting.delete(witness)
          }
          if (question.waiting.size === 0) question.settle(false)
        }, POLL_MS),
        settle: (heard) => {
          clearTimeout(question.timer)
          clearInterval(question.poll)
          this.#questions.delete(id)
          resolve(heard)
        },
      }
      this.#questions.set(id, question)
      const ask: ClusterMessage = { t: 'suspect', id, peer: peerId, silent: Math.floor(silent) }
      for (const [, link] of asked) this.#components.send(link, ask)
    })
  }

  /**
   * A peer asks whether we hear `peer`, silent to it for `silent` ms: yes if our own link
   * heard it at least a heartbeat more recently. A peer that has stopped or hung fell
   * silent to all of us at about the same time: no vouching for it.
   */
  onSuspect(link: Link, message: Extract<ClusterMessage, { t: 'suspect' }>): void {
    const { links, heartbeatInterval } = this.#components
    const target = links.get(message.peer)
    const heard = target !== undefined && !target.closed && target.silentFor < message.silent - heartbeatInterval
    this.#components.send(link, { t: 'heard', id: message.id, heard })
  }

  /** A peer answers one of our questions. */
  onHeard(link: Link, message: Extract<ClusterMessage, { t: 'heard' }>): void {
    const question = this.#questions.get(message.id)
    if (!question?.waiting.delete(link.peerId)) return
    if (message.heard) question.settle(true)
    else if (question.waiting.size === 0) question.settle(false)
  }

  /** Answers every open question with "not heard" (the node is stopping). */
  stop(): void {
    for (const question of [...this.#questions.values()]) question.settle(false)
  }
}
