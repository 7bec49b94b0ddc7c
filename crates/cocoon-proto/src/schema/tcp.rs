//! The transport layer: `tcp.Packet`, the payload of every framed packet.

tl_struct! {
    /// `tcp.ping`: keepalive probe, answered by [`TcpPong`] with the same id.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    TcpPing = "tcp.ping id:long = tcp.Packet" { id: i64 }
}

tl_struct! {
    /// `tcp.pong`: answer to [`TcpPing`].
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    TcpPong = "tcp.pong id:long = tcp.Packet" { id: i64 }
}

tl_struct! {
    /// `tcp.packet`: a one-way message.
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    TcpPacketData = "tcp.packet data:bytes = tcp.Packet" { data: Vec<u8> }
}

tl_struct! {
    /// `tcp.query`: a request expecting a [`TcpQueryAnswer`] or [`TcpQueryError`] with its id.
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    TcpQuery = "tcp.query id:long data:bytes = tcp.Packet" { id: i64, data: Vec<u8> }
}

tl_struct! {
    /// `tcp.queryAnswer`: successful answer to a [`TcpQuery`].
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    TcpQueryAnswer = "tcp.queryAnswer id:long data:bytes = tcp.Packet" { id: i64, data: Vec<u8> }
}

tl_struct! {
    /// `tcp.queryError`: failed answer to a [`TcpQuery`].
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    TcpQueryError = "tcp.queryError id:long code:int message:string = tcp.Packet" {
        id: i64,
        code: i32,
        message: String,
    }
}

tl_struct! {
    /// `tcp.connect`: first packet from the dialling side.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    TcpConnect = "tcp.connect id:long = tcp.Packet" { id: i64 }
}

tl_struct! {
    /// `tcp.connected`: the accepting side's answer to [`TcpConnect`], with the same id.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    TcpConnected = "tcp.connected id:long = tcp.Packet" { id: i64 }
}

tl_enum! {
    /// `tcp.Packet`: the payload of every framed packet.
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    TcpPacket {
        /// Keepalive probe.
        Ping(TcpPing),
        /// Keepalive answer.
        Pong(TcpPong),
        /// One-way message.
        Packet(TcpPacketData),
        /// Request.
        Query(TcpQuery),
        /// Successful answer.
        QueryAnswer(TcpQueryAnswer),
        /// Failed answer.
        QueryError(TcpQueryError),
        /// Handshake request.
        Connect(TcpConnect),
        /// Handshake answer.
        Connected(TcpConnected),
    }
}
