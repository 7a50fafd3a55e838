import NIOCore
import SIPCore
import SIPEdge

/// How a delivery to a user's endpoints ended.
public enum SIPDeliveryOutcome: Hashable, Sendable {
    /// An endpoint accepted (2xx): the message counts as delivered.
    case accepted(SIPResponse, contact: SIPNameAddress)
    /// No endpoint accepted. `best` is the most telling final response of those that
    /// answered (§16.7 step 6), nil when none answered in time.
    case failed(best: SIPResponse?)
    /// The user has no registered endpoint.
    case offline
}

/// The branch that accepted a forked INVITE: the dialog is built from its request and 2xx.
struct ForkWinner: Sendable {
    let request: SIPRequest
    let binding: SIPBinding
}

/// Parallel forking of one request to every binding of an address-of-record, as Lync does it
/// for MPOP: the first 2xx wins and the other branches end (CANCEL for an INVITE, abandoned for
/// a MESSAGE, which cannot be cancelled); each branch waits for its endpoint class's acceptance
/// timeout, bounded by `budget`.
///
/// Loop-bound: created, driven and completed on the edge's event loop.
final class ForkedDelivery: @unchecked Sendable {
    private struct Branch {
        let binding: SIPBinding
        var request: SIPRequest?
        var handle: SIPClientHandle?
        var timer: Scheduled<Void>?
        var finished = false
    }

    private let edge: SIPEdge
    private let loop: any EventLoop
    private var branches: [Branch]
    private var responses: [SIPResponse] = []
    private var completion: (@Sendable (SIPDeliveryOutcome, ForkWinner?) -> Void)?
    /// A 2xx after the outcome is settled (an INVITE's: the winner's retransmission, or another
    /// branch that accepted before its CANCEL arrived); the dialog layer ACKs it (and BYEs it).
    private let late: (@Sendable (ForkWinner, SIPResponse) -> Void)?

    private init(edge: SIPEdge, bindings: [SIPBinding], late: (@Sendable (ForkWinner, SIPResponse) -> Void)?,
                 completion: @escaping @Sendable (SIPDeliveryOutcome, ForkWinner?) -> Void) {
        self.edge = edge
        self.loop = edge.eventLoop
        self.branches = bindings.map { Branch(binding: $0) }
        self.late = late
        self.completion = completion
    }

    /// Starts the branches. `request` is the template: each branch gets the binding's Contact as
    /// Request-URI and a fresh Via; Route headers (ours, already consumed) are dropped.
    static func start(_ request: SIPRequest, to bindings: [SIPBinding], edge: SIPEdge, budget: Duration?,
                      completion: @escaping @Sendable (SIPDeliveryOutcome) -> Void) {
        start(request, to: bindings, edge: edge, budget: budget, prepare: nil, late: nil) { outcome, _ in completion(outcome) }
    }

    /// The general form: `prepare` adjusts each branch's request (an INVITE's Contact depends on
    /// the transport the branch goes over); `late` sees 2xx that arrive once it is settled.
    static func start(_ request: SIPRequest, to bindings: [SIPBinding], edge: SIPEdge, budget: Duration?,
                      prepare: (@Sendable (inout SIPRequest, SIPBinding) -> Void)?,
                      late: (@Sendable (ForkWinner, SIPResponse) -> Void)?,
                      completion: @escaping @Sendable (SIPDeliveryOutcome, ForkWinner?) -> Void) {
        edge.eventLoop.preconditionInEventLoop()
        guard !bindings.isEmpty else { return completion(.offline, nil) }
        let delivery = ForkedDelivery(edge: edge, bindings: bindings, late: late, completion: completion)
        for index in delivery.branches.indices {
            let binding = delivery.branches[index].binding
            var branchRequest = request
            branchRequest.uri = binding.contact.uri
            branchRequest.headers.remove(.via)
            branchRequest.headers.remove(.route)
            let hops = request.maxForwards.map { Int($0) - 1 } ?? 70
            branchRequest.headers.set(.maxForwards, String(max(hops, 0)))
            prepare?(&branchRequest, binding)
            delivery.branches[index].request = branchRequest
            let wait = budget.map { min($0, binding.endpointClass.acceptanceTimeout) } ?? binding.endpointClass.acceptanceTimeout
            // Arm the acceptance timer before sending: a response can only arrive after.
            delivery.branches[index].timer = delivery.loop.scheduleTask(in: TimeAmount(wait)) {
                delivery.acceptanceTimeUp(index)
            }
            delivery.branches[index].handle = edge.send(branchRequest, to: binding.flow) { event in
                delivery.branchEvent(index, event)
            }
        }
    }

    private func branchEvent(_ index: Int, _ event: SIPClientEvent) {
        guard completion != nil, !branches[index].finished else {
            if case .final(let response) = event, response.isSuccess, let request = branches[index].request {
                late?(ForkWinner(request: request, binding: branches[index].binding), response)
            }
            return
        }
        switch event {
        case .provisional:
            return
        case .final(let response) where response.isSuccess:
            finish(index)
            let winner = branches[index].request.map { ForkWinner(request: $0, binding: branches[index].binding) }
            complete(.accepted(response, contact: branches[index].binding.contact), winner: winner)
            endOtherBranches()
        case .final(let response):
            responses.append(response)
            finish(index)
        case .timeout, .transportError:
            finish(index)
        }
        completeIfAllFinished()
    }

    private func acceptanceTimeUp(_ index: Int) {
        guard completion != nil, !branches[index].finished else { return }
        if let handle = branches[index].handle { stop(handle, isInvite: branches[index].handle?.isInvite ?? false) }
        finish(index)
        completeIfAllFinished()
    }

    private func finish(_ index: Int) {
        branches[index].finished = true
        branches[index].timer?.cancel()
    }

    private func endOtherBranches() {
        for index in branches.indices where !branches[index].finished {
            if let handle = branches[index].handle { stop(handle, isInvite: handle.isInvite) }
            finish(index)
        }
    }

    private func stop(_ handle: SIPClientHandle, isInvite: Bool) {
        if isInvite { edge.cancel(handle) } else { edge.abandon(handle) }
    }

    private func completeIfAllFinished() {
        guard completion != nil, branches.allSatisfy(\.finished) else { return }
        complete(.failed(best: Self.best(responses)))
    }

    private func complete(_ outcome: SIPDeliveryOutcome, winner: ForkWinner? = nil) {
        let completion = self.completion
        self.completion = nil
        completion?(outcome, winner)
    }

    /// §16.7 step 6: a 6xx if there is one, else the lowest class; within a class the lowest code.
    static func best(_ responses: [SIPResponse]) -> SIPResponse? {
        if let global = responses.first(where: { $0.statusCode >= 600 }) { return global }
        return responses.min { ($0.statusCode / 100, $0.statusCode) < ($1.statusCode / 100, $1.statusCode) }
    }
}
