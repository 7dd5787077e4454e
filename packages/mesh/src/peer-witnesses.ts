import type { ClusterMessage } from './cluster-protocol.js'
import type { Link } from './link.js'

/** What the witnesses ask of their cluster. */
export interface PeerWitnessesComponents {
  /** The live links to peers, by peer id. */
  links: ReadonlyMap<string, Link>
  /** Sends a message, dropping it if the link is closing. */
  send(link: Link, message: ClusterMessage): void
  /** A peer heard from within this many ms is alive (the links' heartbeatTimeout). */
  heartbeatTimeout: number
}

interface Question {
  /** Peers asked that have not answered yet. */
  waiting: Set<string>
  timer: NodeJS.Timeout
  settle(heard: boolean): void
}

/**
 * Indirect confirmation before a peer is marked down (the idea of SWIM's ping-req): when
 * our link to a peer falls silent, ask the other peers whether they still hear it. One
 * TCP connection can stall for seconds (retransmission back-off on a lossy path) while
 * its peer is well and talks to everyone else; a peer that is really hung, stopped or
 * cut off from us all is heard by nobody, and goes down at the usual bound.
 *
 * Only peers we hear ourselves are asked, and an answer counts only from a peer asked.
 */
export class PeerWitnesses {
  readonly #components: PeerWitnessesComponents
  readonly #questions = new Map<number, Question>()
  #nextId = 0

  constructor(components: PeerWitnessesComponents) {
    this.#components = components
  }

  /**
   * Resolves true as soon as one other peer says it heard `peerId` within heartbeatTimeout;
   * false once all said no, or after `within` ms (an answer that does not come is a no).
   */
  stillHeard(peerId: string, within: number): Promise<boolean> {
    const { links, heartbeatTimeout } = this.#components
    const asked = [...links].filter(([id, link]) => id !== peerId && !link.closed && link.silentFor < heartbeatTimeout)
    if (asked.length === 0) return Promise.resolve(false)
    return new Promise<boolean>((resolve) => {
      const id = ++this.#nextId
      const question: Question = {
        waiting: new Set(asked.map(([witness]) => witness)),
        timer: setTimeout(() => question.settle(false), within),
        settle: (heard) => {
          clearTimeout(question.timer)
          this.#questions.delete(id)
          resolve(heard)
        },
      }
      this.#questions.set(id, question)
      for (const [, link] of asked) this.#components.send(link, { t: 'suspect', id, peer: peerId })
    })
  }

  /** A peer asks whether we hear `peer`: the answer is our own link's. */
  onSuspect(link: Link, message: Extract<ClusterMessage, { t: 'suspect' }>): void {
    const target = this.#components.links.get(message.peer)
    const heard = target !== undefined && !target.closed && target.silentFor < this.#components.heartbeatTimeout
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
