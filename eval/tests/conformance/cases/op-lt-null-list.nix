[ null ] < [ null ]
