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

/// Parallel forking of one request to every binding of an address-of-record, as Lync does it
/// for MPOP: the first 2xx wins and the other branches end (CANCEL for an INVITE, abandoned for
/// a MESSAGE, which cannot be cancelled); each branch waits for its endpoint class's acceptance
/// timeout, bounded by `budget`.
///
/// Loop-bound: created, driven and completed on the edge's event loop.
final class ForkedDelivery: @unchecked Sendable {
    private struct Branch {
        let binding: SIPBinding
        var handle: SIPClientHandle?
        var timer: Scheduled<Void>?
        var finished = false
    }

    private let edge: SIPEdge
    private let loop: any EventLoop
    private var branches: [Branch]
    private var responses: [SIPResponse] = []
    private var completion: (@Sendable (SIPDeliveryOutcome) -> Void)?

    private init(edge: SIPEdge, bindings: [SIPBinding], completion: @escaping @Sendable (SIPDeliveryOutcome) -> Void) {
        self.edge = edge
        self.loop = edge.eventLoop
        self.branches = bindings.map { Branch(binding: $0) }
        self.completion = completion
    }

    /// Starts the branches. `request` is the template: each branch gets the binding's Contact as
    /// Request-URI and a fresh Via; Route headers (ours, already consumed) are dropped.
    static func start(_ request: SIPRequest, to bindings: [SIPBinding], edge: SIPEdge, budget: Duration?,
                      completion: @escaping @Sendable (SIPDeliveryOutcome) -> Void) {
        edge.eventLoop.preconditionInEventLoop()
        guard !bindings.isEmpty else { return completion(.offline) }
        let delivery = ForkedDelivery(edge: edge, bindings: bindings, completion: completion)
        for index in delivery.branches.indices {
            let binding = delivery.branches[index].binding
            var branchRequest = request
            branchRequest.uri = binding.contact.uri
            branchRequest.headers.remove(.via)
            branchRequest.headers.remove(.route)
            let hops = request.maxForwards.map { Int($0) - 1 } ?? 70
            branchRequest.headers.set(.maxForwards, String(max(hops, 0)))
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
        guard completion != nil, !branches[index].finished else { return }
        switch event {
        case .provisional:
            return
        case .final(let response) where response.isSuccess:
            finish(index)
            complete(.accepted(response, contact: branches[index].binding.contact))
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

    private func complete(_ outcome: SIPDeliveryOutcome) {
        let completion = self.completion
        self.completion = nil
        completion?(outcome)
    }

    /// §16.7 step 6: a 6xx if there is one, else the lowest class; within a class the lowest code.
    static func best(_ responses: [SIPResponse]) -> SIPResponse? {
        if let global = responses.first(where: { $0.statusCode >= 600 }) { return global }
        return responses.min { ($0.statusCode / 100, $0.statusCode) < ($1.statusCode / 100, $1.statusCode) }
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
