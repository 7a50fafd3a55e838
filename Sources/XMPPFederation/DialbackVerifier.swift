import NIOCore
import XMLCore
import XMPPCore

/// The receiving server's callback to an authoritative server (XEP-0220 §2.1.2 step 2): open a
/// stream, send `<db:verify/>`, report the answer, close.
final class DialbackVerifierHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let sender: String
    private let target: String
    private let key: String
    private let streamID: String
    private let promise: EventLoopPromise<DialbackElement.Outcome>
    private let input = StreamInput()
    private var sentVerify = false
    private var done = false

    init(sender: String, target: String, key: String, streamID: String, promise: EventLoopPromise<DialbackElement.Outcome>) {
        self.sender = sender
        self.target = target
        self.key = key
        self.streamID = streamID
        self.promise = promise
    }

    func channelActive(context: ChannelHandlerContext) {
        StreamWrite.header(XMPPStreamHeader(from: target, to: sender, declaresDialback: true), context)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let events: [XMPPStreamEvent]
        do {
            events = try input.read(unwrapInboundIn(data))
        } catch {
            finish(.error, context)
            return
        }
        for event in events {
            switch event {
            case .opened:
                guard !sentVerify else { continue }
                sentVerify = true
                StreamWrite.element(DialbackElement(kind: .verify, from: target, to: sender, id: streamID, key: key).element, context)
            case .element(let element):
                if let answer = DialbackElement(element: element), answer.kind == .verify, answer.id == streamID, let type = answer.type {
                    finish(type, context)
                } else if element.name == "error", element.namespace == XMPPNamespace.streams {
                    finish(.error, context)
                }
            case .closed:
                finish(.error, context)
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !done {
            done = true
            promise.succeed(.error)
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        finish(.error, context)
    }

    private func finish(_ outcome: DialbackElement.Outcome, _ context: ChannelHandlerContext) {
        guard !done else { return }
        done = true
        promise.succeed(outcome)
        StreamWrite.close(nil, context)
    }
}
